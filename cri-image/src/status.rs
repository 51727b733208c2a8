//! ImageStatus and the CRI view of a stored image: tags and digests, size, the user from the image config (uid when numeric), the spec with the manifest's annotations, `pinned`, and with `verbose` the image config as JSON under `info`.

use std::collections::HashMap;

use cri_api::v1::{Image as CriImage, ImageSpec, ImageStatusResponse, Int64Value};
use cri_store::image::Image;

use super::error::Result;
use super::ImageManager;

impl ImageManager {
    /// ImageStatus: an unknown image is an empty response, not an error.
    pub async fn status(&self, image: &str, verbose: bool) -> Result<ImageStatusResponse> {
        self.ensure_loaded().await?;
        let Some(found) = self.resolve_local(image)? else {
            return Ok(ImageStatusResponse::default());
        };
        let info = if verbose {
            verbose_info(&found)
        } else {
            HashMap::new()
        };
        Ok(ImageStatusResponse {
            image: Some(to_cri_image(&found)),
            info,
        })
    }
}

/// A stored image as the CRI reports it.
pub fn to_cri_image(image: &Image) -> CriImage {
    let user = image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .unwrap_or_default();
    let (uid, username) = user_from_image(&user);
    CriImage {
        id: image.id.clone(),
        repo_tags: image.repo_tags(),
        repo_digests: image.repo_digests(),
        size: image.size,
        uid: uid.map(|value| Int64Value { value }),
        username,
        spec: Some(ImageSpec {
            image: image.id.clone(),
            annotations: image.annotations.clone(),
            ..ImageSpec::default()
        }),
        pinned: image.pinned,
    }
}

/// containerd's `getUserFromImage`: the part before `:`; numeric is a uid.
fn user_from_image(user: &str) -> (Option<i64>, String) {
    if user.is_empty() {
        return (None, String::new());
    }
    let user = user.split(':').next().unwrap_or(user);
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user.to_owned()),
    }
}

/// `{"chainID": ..., "imageSpec": <image config>}` under `info`.
fn verbose_info(image: &Image) -> HashMap<String, String> {
    let info = serde_json::json!({
        "chainID": image.chain_id,
        "imageSpec": image.config,
    });
    let text = serde_json::to_string(&info).unwrap_or_else(|e| e.to_string());
    HashMap::from([("info".to_owned(), text)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use oci_spec::image::ImageConfiguration;

    fn check(user: &str, uid: Option<i64>, name: &str) {
        assert_eq!(user_from_image(user), (uid, name.to_owned()), "{user}");
    }

    #[test]
    fn users() {
        check("", None, "");
        check("0", Some(0), "");
        check("1000:1000", Some(1000), "");
        check("nobody", None, "nobody");
        check("www:staff", None, "www");
    }

    fn image(user: &str) -> Image {
        let config: ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"User": user, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        Image {
            id: "sha256:aa".into(),
            references: vec![
                "docker.io/library/x:1".into(),
                "docker.io/library/x@sha256:bb".into(),
            ],
            chain_id: "sha256:cc".into(),
            size: 42,
            config,
            pinned: true,
            annotations: HashMap::from([("org.opencontainers.image.title".into(), "x".into())]),
        }
    }

    #[test]
    fn cri_view() {
        let cri = to_cri_image(&image("65534"));
        assert_eq!(cri.repo_tags, ["docker.io/library/x:1"]);
        assert_eq!(cri.repo_digests, ["docker.io/library/x@sha256:bb"]);
        assert_eq!(cri.uid.unwrap().value, 65534);
        assert_eq!(cri.size, 42);
        assert!(cri.pinned);
        assert_eq!(
            cri.spec.unwrap().annotations["org.opencontainers.image.title"],
            "x"
        );
    }

    #[test]
    fn verbose_has_chain_and_config() {
        let info = verbose_info(&image("app"));
        let v: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
        assert_eq!(v["chainID"], "sha256:cc");
        assert_eq!(v["imageSpec"]["config"]["User"], "app");
    }
}
