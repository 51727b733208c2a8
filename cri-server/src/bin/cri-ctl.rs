//! `cri-ctl`: a small CRI client for poking a runtime socket when crictl
//! is not at hand. Prints each response as JSON.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cri_api::v1::image_service_client::ImageServiceClient;
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::*;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Parser)]
#[command(name = "cri-ctl", version, about = "A minimal CRI v1 client")]
struct Args {
    /// The runtime's socket (`unix://` prefix optional).
    #[arg(
        long,
        short = 'r',
        env = "CONTAINER_RUNTIME_ENDPOINT",
        default_value = "/run/cri-server/cri-server.sock"
    )]
    runtime_endpoint: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runtime name and versions.
    Version,
    /// Runtime conditions and, verbosely, the effective config.
    Info,
    /// Images known to the runtime.
    Images,
    /// Pull an image.
    Pull { image: String },
    /// Pod sandboxes.
    Pods,
    /// Containers.
    Ps,
}

async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    let path = PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint));
    let channel = Endpoint::try_from("http://[::]")?
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await?;
    Ok(channel)
}

fn print<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let channel = connect(&args.runtime_endpoint).await?;
    let mut runtime = RuntimeServiceClient::new(channel.clone());
    let mut images = ImageServiceClient::new(channel);
    match args.command {
        Command::Version => print(
            &runtime
                .version(VersionRequest::default())
                .await?
                .into_inner(),
        )?,
        Command::Info => {
            let status = runtime
                .status(StatusRequest { verbose: true })
                .await?
                .into_inner();
            let mut out = serde_json::json!({
                "status": status.status,
                "runtimeHandlers": status.runtime_handlers,
            });
            for (key, value) in status.info {
                out[key] = serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value));
            }
            print(&out)?
        }
        Command::Images => print(
            &images
                .list_images(ListImagesRequest::default())
                .await?
                .into_inner(),
        )?,
        Command::Pull { image } => {
            let request = PullImageRequest {
                image: Some(ImageSpec {
                    image,
                    ..Default::default()
                }),
                ..Default::default()
            };
            print(&images.pull_image(request).await?.into_inner())?
        }
        Command::Pods => print(
            &runtime
                .list_pod_sandbox(ListPodSandboxRequest::default())
                .await?
                .into_inner(),
        )?,
        Command::Ps => print(
            &runtime
                .list_containers(ListContainersRequest::default())
                .await?
                .into_inner(),
        )?,
    }
    Ok(())
}
