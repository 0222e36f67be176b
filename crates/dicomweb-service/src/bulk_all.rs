//! The study, series and instance Bulkdata resources (PS3.18 10.4.1.1.5 and Table 10.4.1-1): every bulk value
//! of the instances in scope, one part each, labelled by the URI the metadata names it by (`Content-Location`).
//!
//! Built on the single-value path ([`StudiesService::bulk_data`], for the instance records already listed): the values an instance has are the relative
//! `BulkDataURI`s of its stored metadata; encapsulated Pixel Data is its frames, as stored (the Pixel Data URI
//! leads to the frames). Instances are visited one after the other, and a value is read only when its part is
//! sent, so memory does not grow with the scope.

use std::sync::Arc;

use bytes::Bytes;
use dicomweb_catalogue::InstanceRecord;
use dicomweb_instance::AttributePath;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::retrieve::instance_url;
use crate::{
    BulkData, FrameBodies, Result, Scope, ServiceError, StudiesService, TransferSyntaxRequest,
    describe_scope,
};

/// One part of a Bulkdata resource.
pub struct BulkPart {
    /// The value's URI under the base URL the caller gave: `{instance}/bulkdata/{path}`, or
    /// `{instance}/frames/{n}` for a frame of encapsulated Pixel Data.
    pub location: String,
    /// `application/octet-stream`, or a frame's media type and transfer syntax.
    pub content_type: String,
    /// The bytes, read as the part is sent.
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for BulkPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkPart")
            .field("location", &self.location)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl StudiesService {
    /// Every bulk value of the instances of `scope` (a study, series or instance), instance by instance in
    /// listing order, each instance's values in the order of its metadata. 404 when the scope has no instance.
    pub async fn bulk_data_of(
        self: &Arc<Self>,
        scope: &Scope,
        base_url: &str,
    ) -> Result<BoxStream<'static, Result<BulkPart>>> {
        let records = self.instances_in(scope).await?;
        if records.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "{} not found",
                describe_scope(scope)
            )));
        }
        let service = self.clone();
        let base_url = base_url.to_owned();
        Ok(futures::stream::iter(records)
            .then(move |record| {
                let service = service.clone();
                let base_url = base_url.clone();
                async move { service.bulk_parts_of(record, &base_url).await }
            })
            .try_flatten()
            .boxed())
    }

    /// The parts of one instance: its values (opened one by one as the stream is read), then the frames of its
    /// encapsulated Pixel Data, if any.
    async fn bulk_parts_of(
        self: &Arc<Self>,
        record: InstanceRecord,
        base_url: &str,
    ) -> Result<BoxStream<'static, Result<BulkPart>>> {
        let metadata = self.stored_metadata(&record).await?;
        let mut paths = Vec::new();
        relative_bulk_paths(&metadata, &mut paths);
        let scope = Scope::Instance(
            record.study_instance_uid.clone(),
            record.series_instance_uid.clone(),
            record.sop_instance_uid.clone(),
        );
        let record = Arc::new(record);
        let url = instance_url(
            base_url,
            &record.study_instance_uid,
            &record.series_instance_uid,
            &record.sop_instance_uid,
        );
        let service = self.clone();
        let values_url = url.clone();
        let values = futures::stream::iter(paths)
            .then(move |path| {
                let service = service.clone();
                let record = record.clone();
                let url = values_url.clone();
                async move {
                    let attribute: AttributePath = path.parse().map_err(|e| {
                        ServiceError::Internal(format!(
                            "stored BulkDataURI {path} is malformed: {e}"
                        ))
                    })?;
                    // The record listed above: no catalogue lookup per value.
                    match service
                        .bulk_data_of_record((*record).clone(), &attribute, None)
                        .await
                    {
                        Ok(BulkData::Value(value)) => Ok(Some(Part::Value(BulkPart {
                            location: format!("{url}/bulkdata/{path}"),
                            content_type: "application/octet-stream".to_owned(),
                            body: value.body,
                        }))),
                        Ok(BulkData::EncapsulatedPixelData { number_of_frames }) => {
                            Ok(Some(Part::Frames(number_of_frames)))
                        }
                        // A URI of an empty value has nothing to send.
                        Err(ServiceError::NotFound(_)) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .try_filter_map(|part| async move { Ok(part) });
        let service = self.clone();
        Ok(values
            .and_then(move |part| {
                let service = service.clone();
                let scope = scope.clone();
                let url = url.clone();
                async move {
                    match part {
                        Part::Value(part) => Ok(futures::stream::iter([Ok(part)]).boxed()),
                        Part::Frames(count) => service.frame_parts(&scope, &url, count).await,
                    }
                }
            })
            .try_flatten()
            .boxed())
    }

    /// The frames of an instance's encapsulated Pixel Data as parts, as stored.
    async fn frame_parts(
        &self,
        scope: &Scope,
        url: &str,
        count: u32,
    ) -> Result<BoxStream<'static, Result<BulkPart>>> {
        let numbers: Vec<u32> = (1..=count).collect();
        let data = self
            .frames(scope, &numbers, &[TransferSyntaxRequest::AsStored.into()])
            .await?;
        let content_type = format!(
            "{}; transfer-syntax={}",
            data.media_type, data.transfer_syntax_uid
        );
        let url = url.to_owned();
        let location = move |n: usize| format!("{url}/frames/{}", n + 1);
        Ok(match data.frames {
            FrameBodies::Read(frames) => futures::stream::iter(
                frames
                    .into_iter()
                    .enumerate()
                    .map(move |(n, bytes)| {
                        Ok(BulkPart {
                            location: location(n),
                            content_type: content_type.clone(),
                            body: futures::stream::iter([Ok(bytes)]).boxed(),
                        })
                    })
                    .collect::<Vec<_>>(),
            )
            .boxed(),
            FrameBodies::Streamed(frames) => frames
                .enumerate()
                .map(move |(n, frame)| {
                    frame.map(|frame| BulkPart {
                        location: location(n),
                        content_type: content_type.clone(),
                        body: frame
                            .body
                            .map_err(|e| {
                                ServiceError::Internal(format!("reading a frame failed: {e}"))
                            })
                            .boxed(),
                    })
                })
                .boxed(),
        })
    }
}

enum Part {
    Value(BulkPart),
    Frames(u32),
}

/// The attribute paths (`7FE00010`, `54000100.0.54001010`) of the relative `BulkDataURI`s (`bulkdata/{path}`)
/// of a stored DICOM JSON data set, in document order, nested ones included.
fn relative_bulk_paths(json: &serde_json::Value, out: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "BulkDataURI" {
                    if let Some(path) = value.as_str().and_then(|uri| uri.strip_prefix("bulkdata/"))
                    {
                        out.push(path.to_owned());
                    }
                } else {
                    relative_bulk_paths(value, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                relative_bulk_paths(item, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_relative_bulk_data_uri_is_found_nested_ones_too_and_absolute_ones_are_not_ours() {
        let json = serde_json::json!({
            "00081030": {"vr": "LO", "Value": ["x"]},
            "54000100": {"vr": "SQ", "Value": [
                {"54001010": {"vr": "OW", "BulkDataURI": "bulkdata/54000100.0.54001010"}}
            ]},
            "00420011": {"vr": "OB", "BulkDataURI": "https://elsewhere.example/value"},
            "7FE00010": {"vr": "OW", "BulkDataURI": "bulkdata/7FE00010"}
        });
        let mut paths = Vec::new();
        relative_bulk_paths(&json, &mut paths);
        paths.sort();
        assert_eq!(paths, ["54000100.0.54001010", "7FE00010"]);
    }
}
