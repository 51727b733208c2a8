//! containerd's Images service: image records (names pointing at manifests).

use crate::traced::TracedChannel;
use async_trait::async_trait;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{
    CreateImageRequest, DeleteImageRequest, GetImageRequest, ListImagesRequest, UpdateImageRequest,
};
use cri_api::containerd::{ImageRecord, Images, Result};

use super::convert::{field_mask, image_from_proto, image_to_proto};
use super::{ContainerdClient, Deadline, MAX_MESSAGE_SIZE};

/// [`Images`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdImages {
    client: ContainerdClient,
}

impl ContainerdImages {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> ImagesClient<TracedChannel> {
        ImagesClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

#[async_trait]
impl Images for ContainerdImages {
    async fn get(&self, name: &str) -> Result<ImageRecord> {
        const OP: &str = "get image";
        let request = GetImageRequest {
            name: name.to_owned(),
        };
        let reply = self
            .api()
            .get(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, name, &s))?;
        let image = reply
            .into_inner()
            .image
            .ok_or_else(|| ContainerdClient::missing(OP, "image"))?;
        Ok(image_from_proto(image))
    }

    async fn list(&self, filters: Vec<String>) -> Result<Vec<ImageRecord>> {
        const OP: &str = "list images";
        let what = filters.join(" or ");
        let request = ListImagesRequest { filters };
        let reply = self
            .api()
            .list(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?;
        Ok(reply
            .into_inner()
            .images
            .into_iter()
            .map(image_from_proto)
            .collect())
    }

    async fn create(&self, image: ImageRecord) -> Result<ImageRecord> {
        const OP: &str = "create image";
        let name = image.name.clone();
        let request = CreateImageRequest {
            image: Some(image_to_proto(image)),
            source_date_epoch: None,
        };
        let reply = self
            .api()
            .create(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &name, &s))?;
        let image = reply
            .into_inner()
            .image
            .ok_or_else(|| ContainerdClient::missing(OP, "image"))?;
        Ok(image_from_proto(image))
    }

    async fn update(&self, image: ImageRecord, fieldpaths: Vec<String>) -> Result<ImageRecord> {
        const OP: &str = "update image";
        let name = image.name.clone();
        let request = UpdateImageRequest {
            image: Some(image_to_proto(image)),
            update_mask: field_mask(fieldpaths),
            source_date_epoch: None,
        };
        let reply = self
            .api()
            .update(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &name, &s))?;
        let image = reply
            .into_inner()
            .image
            .ok_or_else(|| ContainerdClient::missing(OP, "image"))?;
        Ok(image_from_proto(image))
    }

    async fn delete(&self, name: &str, sync: bool) -> Result<()> {
        const OP: &str = "delete image";
        let request = DeleteImageRequest {
            name: name.to_owned(),
            sync,
            target: None,
        };
        self.api()
            .delete(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, name, &s))?;
        Ok(())
    }
}
