//! STOW-RS of DICOM JSON metadata and bulk data (PS3.18 10.5: `multipart/related;
//! type="application/dicom+json"`): each data set of the metadata, its `BulkDataURI`s replaced by the bulk data
//! parts whose `Content-Location` they name, is written as a Part 10 file and stored as any received instance
//! (same inspection, validation, durability and answer).
//!
//! Native bulk data (`application/octet-stream`) gives an Explicit VR Little Endian file. A compressed Pixel Data
//! part (`image/jpeg`, `image/jls`, `image/jp2`, `image/x-dicom-rle`..., with its `transfer-syntax` parameter or
//! the media type's default) gives a file in that syntax, the part as the one fragment of the one frame: a
//! multi-frame compressed instance is refused, since one part cannot say where its frames begin.

use std::collections::HashMap;

use bytes::Bytes;
use dicom_core::header::Length;
use dicom_core::value::{DataSetSequence, PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use crate::StudiesService;
use crate::store::{FailureReason, InstanceOutcome, StoreRequestError};

/// The most bytes of metadata and bulk data one such request may hold: it is held in memory while its files are
/// written (each about as large again).
pub const MAX_JSON_STORE_BYTES: u64 = 256 * 1024 * 1024;

const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// One bulk data part of the request.
#[derive(Debug, Clone)]
pub struct BulkDataPart {
    /// Its `Content-Location`: the `BulkDataURI` that names it.
    pub content_location: String,
    /// Its `Content-Type` (`application/octet-stream` for native bytes).
    pub content_type: String,
    pub bytes: Bytes,
}

/// The transfer syntax a bulk data part of `content_type` is in: `None` for native bytes (octet-stream), else
/// the `transfer-syntax` parameter or the default of the media type (PS3.18 Table 8.7.3-5).
fn compressed_syntax(content_type: &str) -> Result<Option<String>, String> {
    let mut params = content_type.split(';');
    let essence = params
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let named = params.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("transfer-syntax")
            .then(|| value.trim().trim_matches('"').to_owned())
    });
    let default = match essence.as_str() {
        "application/octet-stream" => return Ok(None),
        "image/jpeg" => "1.2.840.10008.1.2.4.50",
        "image/jls" => "1.2.840.10008.1.2.4.80",
        "image/jp2" => "1.2.840.10008.1.2.4.90",
        "image/jpx" => "1.2.840.10008.1.2.4.92",
        "image/x-dicom-rle" | "image/dicom-rle" => "1.2.840.10008.1.2.5",
        "image/jphc" => "1.2.840.10008.1.2.4.201",
        other => {
            return Err(format!(
                "bulk data of Content-Type \"{other}\" is not supported; use application/octet-stream or an image \
                 type of PS3.18 Table 8.7.3-5"
            ));
        }
    };
    Ok(Some(named.unwrap_or_else(|| default.to_owned())))
}

/// Why a data set could not be made a file: the outcome of its instance.
struct Refused {
    ids: Option<(String, String)>,
    message: String,
}

fn text_of(dataset: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    dataset
        .get(tag)?
        .to_str()
        .ok()
        .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
}

/// Replaces each `BulkDataURI` of `object` (and of its items) with the bytes of its part; the top-level Pixel
/// Data of a compressed part becomes one fragment, its syntax recorded in `syntax`.
fn resolve(
    object: InMemDicomObject,
    parts: &HashMap<&str, &BulkDataPart>,
    top_level: bool,
    syntax: &mut Option<String>,
) -> Result<InMemDicomObject, String> {
    let mut resolved = InMemDicomObject::new_empty();
    for element in object {
        // A BulkDataURI read from JSON is kept as the binary element's string value (see dicomweb-json).
        let uri = dicomweb_json::bulk_data_uri(&element).map(str::to_owned);
        let (header, value) = element.into_parts();
        let value = match (value, uri) {
            (Value::Sequence(sequence), _) => {
                let items = sequence
                    .into_items()
                    .into_iter()
                    .map(|item| resolve(item, parts, false, syntax))
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Sequence(DataSetSequence::new(items, Length::UNDEFINED))
            }
            (_, Some(uri)) => {
                let part = parts.get(uri.as_str()).ok_or_else(|| {
                    format!(
                        "BulkDataURI \"{uri}\" of {} names no bulk data part (no part has that Content-Location)",
                        header.tag
                    )
                })?;
                let compressed = compressed_syntax(&part.content_type)?;
                match compressed {
                    Some(ts) if top_level && header.tag == tags::PIXEL_DATA => {
                        *syntax = Some(ts);
                        resolved.put(DataElement::new(
                            tags::PIXEL_DATA,
                            VR::OB,
                            PixelFragmentSequence::new_fragments(vec![part.bytes.to_vec()]),
                        ));
                        continue;
                    }
                    Some(_) => {
                        return Err(format!(
                            "bulk data part \"{uri}\" of {} is compressed ({}); only the top-level Pixel Data may be",
                            header.tag, part.content_type
                        ));
                    }
                    None => Value::Primitive(PrimitiveValue::U8(part.bytes.to_vec().into())),
                }
            }
            (value, None) => value,
        };
        resolved.put(DataElement::new(header.tag, header.vr, value));
    }
    Ok(resolved)
}

/// The Part 10 file of one data set of the metadata.
fn part10_of(
    document: &serde_json::Value,
    parts: &HashMap<&str, &BulkDataPart>,
) -> Result<Vec<u8>, Refused> {
    let dataset = dicomweb_json::dataset_from_json(document).map_err(|e| Refused {
        ids: None,
        message: format!("the DICOM JSON data set is invalid: {e}"),
    })?;
    let sop_class = text_of(&dataset, tags::SOP_CLASS_UID);
    let sop_instance = text_of(&dataset, tags::SOP_INSTANCE_UID);
    let refused = |message: String| Refused {
        ids: sop_class.clone().zip(sop_instance.clone()),
        message,
    };
    let mut syntax = None;
    let dataset = resolve(dataset, parts, true, &mut syntax).map_err(refused)?;
    if syntax.is_some() {
        let frames = text_of(&dataset, tags::NUMBER_OF_FRAMES)
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(1);
        if frames > 1 {
            return Err(refused(format!(
                "a compressed Pixel Data part of {frames} frames cannot be split into its frames; store the \
                 instance as application/dicom"
            )));
        }
    }
    let (Some(class), Some(instance)) = (&sop_class, &sop_instance) else {
        // The inspection that follows would say the same; the file cannot even be written without them.
        return Err(refused(
            "the data set has no SOPClassUID or no SOPInstanceUID".to_owned(),
        ));
    };
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class.as_str())
        .media_storage_sop_instance_uid(instance.as_str())
        .transfer_syntax(syntax.as_deref().unwrap_or(EXPLICIT_VR_LITTLE_ENDIAN));
    let file = dataset
        .with_meta(meta)
        .map_err(|e| refused(format!("the file meta information cannot be made: {e}")))?;
    let mut out = Vec::new();
    file.write_all(&mut out).map_err(|e| {
        refused(format!(
            "the data set cannot be written as a DICOM file: {e}"
        ))
    })?;
    Ok(out)
}

impl StudiesService {
    /// Stores the data sets of DICOM JSON `metadata` (a JSON array of them, or one), their `BulkDataURI`s
    /// resolved to `parts`: one outcome per data set, in order. A data set that cannot be made a file (invalid
    /// JSON model, a URI that names no part, a compressed multi-frame Pixel Data part) fails alone, with
    /// FailureReason 272 and a message that says why.
    ///
    /// # Errors
    /// [`StoreRequestError::MalformedBody`] when `metadata` is not JSON; a storage failure as for any store.
    pub async fn store_json(
        &self,
        expected_study: Option<&str>,
        metadata: &[u8],
        parts: &[BulkDataPart],
    ) -> Result<Vec<InstanceOutcome>, StoreRequestError> {
        let documents = match serde_json::from_slice::<serde_json::Value>(metadata) {
            Ok(serde_json::Value::Array(documents)) => documents,
            Ok(document @ serde_json::Value::Object(_)) => vec![document],
            Ok(_) => {
                return Err(StoreRequestError::MalformedBody(
                    "the metadata part is not a JSON array of DICOM JSON data sets".into(),
                ));
            }
            Err(e) => {
                return Err(StoreRequestError::MalformedBody(format!(
                    "the metadata part is not JSON: {e}"
                )));
            }
        };
        let mut outcomes = Vec::with_capacity(documents.len());
        // Shared by the data sets' blocking tasks (the parts' bytes are not copied).
        let parts: std::sync::Arc<[BulkDataPart]> = parts.into();
        for document in documents {
            let parts = parts.clone();
            // Writing a file copies its bulk data: off the async workers.
            let file = tokio::task::spawn_blocking(move || {
                let by_location: HashMap<&str, &BulkDataPart> = parts
                    .iter()
                    .map(|part| (part.content_location.as_str(), part))
                    .collect();
                part10_of(&document, &by_location)
            })
            .await
            .map_err(|e| {
                StoreRequestError::MalformedBody(format!("writing the instance failed: {e}"))
            })?;
            let outcome = match file {
                Ok(file) => {
                    let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(
                        Bytes::from(file),
                    )]);
                    self.store_instance(expected_study, body).await?
                }
                Err(Refused { ids, message }) => {
                    crate::store::failed(ids, FailureReason::ProcessingFailure, message)
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::compressed_syntax;

    #[test]
    fn a_parts_media_type_gives_its_transfer_syntax() {
        assert_eq!(compressed_syntax("application/octet-stream"), Ok(None));
        assert_eq!(
            compressed_syntax("image/jpeg").unwrap().as_deref(),
            Some("1.2.840.10008.1.2.4.50")
        );
        assert_eq!(
            compressed_syntax("image/jpeg; transfer-syntax=\"1.2.840.10008.1.2.4.70\"")
                .unwrap()
                .as_deref(),
            Some("1.2.840.10008.1.2.4.70")
        );
        assert!(compressed_syntax("text/plain").is_err());
    }
}
