//! WADO-RS rendered resources and thumbnails (PS3.18 9.5.1.2.1, 10.4.1.1.3-4): a frame decoded and drawn as
//! JPEG or PNG by `dicomweb-pixel`, on the codec pool, and kept in the rendered cache (`render_cache`).

use bytes::Bytes;
use dicom_dictionary_std::tags;
use dicomweb_index::{InstanceRecord, Scope};
use dicomweb_instance::{AttributePath, PixelDataLayout};
use dicomweb_pixel::{PaletteLut, RenderAttributes, RenderOptions, Viewport, VoiFunction, Window};

use crate::BulkData;
use crate::render_cache::RenderedCache;
use crate::retrieve::{
    EXPLICIT_VR_BIG_ENDIAN, frame_geometry, instance_storage_error, little_endian, on_codec_pool,
    read_frames_together, transcode_failure,
};
use crate::{Result, ServiceError, StudiesService, describe_scope};

/// A rendered image.
#[derive(Debug, Clone)]
pub struct RenderedImage {
    /// `image/jpeg` or `image/png`.
    pub media_type: &'static str,
    pub bytes: Bytes,
}

/// The size a thumbnail fits in when no viewport is asked.
pub const THUMBNAIL_SIZE: u32 = 128;

impl StudiesService {
    /// Frame `frame` (1-based) of the instance `scope` names, rendered.
    pub async fn rendered(
        &self,
        scope: &Scope,
        frame: u32,
        options: RenderOptions,
    ) -> Result<RenderedImage> {
        let record = self
            .the_instance(scope, "only instances and frames are rendered here")
            .await?;
        self.render_record(record, frame, options).await
    }

    /// Every instance of the study or series `scope` that has pixel data, rendered as its `/rendered` resource is
    /// (its first frame), in listing order (series, then instance number), each drawn when the stream reaches it.
    /// 404 when there is none; 406, before anything is drawn, when one of them cannot be decoded.
    pub async fn rendered_instances(
        self: &std::sync::Arc<Self>,
        scope: &Scope,
        options: RenderOptions,
    ) -> Result<impl futures::Stream<Item = Result<RenderedImage>> + Send + 'static> {
        let images: Vec<InstanceRecord> = self
            .instances_in(scope)
            .await?
            .into_iter()
            .filter(|r| r.pixel_layout.is_some())
            .collect();
        if images.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "{} has no image to render",
                describe_scope(scope)
            )));
        }
        for record in &images {
            if let Some(why) = why_not_renderable(record) {
                return Err(ServiceError::NotAcceptable(format!(
                    "instance {} cannot be rendered: {why}",
                    record.sop_instance_uid
                )));
            }
        }
        let service = self.clone();
        Ok(futures::StreamExt::then(
            futures::stream::iter(images),
            move |record| {
                let service = service.clone();
                async move { service.render_record(record, 1, options).await }
            },
        ))
    }

    /// A thumbnail of `scope`: of a study, its first series's; of a series, its middle instance's; of an
    /// instance, frame `frame` (the first if `None`). Fits [`THUMBNAIL_SIZE`] unless a viewport is asked.
    pub async fn thumbnail(
        &self,
        scope: &Scope,
        frame: Option<u32>,
        mut options: RenderOptions,
    ) -> Result<RenderedImage> {
        let records = self.instances_in(scope).await?;
        let record = match scope {
            Scope::Instance(..) => records.into_iter().next(),
            Scope::Study(..) | Scope::Series(..) => {
                // Listings are ordered by series, then instance number: the middle instance of the first series
                // that has images (a study's first series may be a report).
                let mut images: Vec<InstanceRecord> = records
                    .into_iter()
                    .filter(|r| r.pixel_layout.is_some())
                    .collect();
                let series = images.first().map(|r| r.series_instance_uid.clone());
                images.retain(|r| Some(&r.series_instance_uid) == series.as_ref());
                let middle = images.len() / 2;
                (!images.is_empty()).then(|| images.swap_remove(middle))
            }
        }
        .ok_or_else(|| {
            ServiceError::NotFound(format!(
                "{} has no image to draw a thumbnail of",
                describe_scope(scope)
            ))
        })?;
        if options.viewport.is_none() {
            options.viewport = Some(Viewport {
                width: THUMBNAIL_SIZE,
                height: THUMBNAIL_SIZE,
                source: None,
            });
        }
        self.render_record(record, frame.unwrap_or(1), options)
            .await
    }

    async fn render_record(
        &self,
        record: InstanceRecord,
        frame: u32,
        options: RenderOptions,
    ) -> Result<RenderedImage> {
        let cannot = |why: String| {
            ServiceError::NotAcceptable(format!(
                "instance {} cannot be rendered: {why}",
                record.sop_instance_uid
            ))
        };
        let layout: PixelDataLayout = match &record.pixel_layout {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                ServiceError::Internal(format!("stored frame layout is unreadable: {e}"))
            })?,
            None => return Err(cannot("it has no pixel data".into())),
        };
        let count = layout.number_of_frames().unwrap_or(0);
        if frame == 0 || frame > count {
            return Err(ServiceError::NotFound(format!(
                "frame {frame} does not exist: instance {} has {count} frame(s), numbered from 1",
                record.sop_instance_uid
            )));
        }
        // The catalogue has named the stored file: an image drawn from it before can be served again.
        let cache_key = RenderedCache::key(&record.blob_key, frame, &options);
        if let Some(image) = self.rendered_cache.get(&cache_key) {
            return Ok(image);
        }
        let metadata = self.stored_metadata(&record).await?;
        let geometry = frame_geometry(&metadata, &record.sop_instance_uid)?;
        if let Some(Viewport {
            source: Some((x, y, w, h)),
            ..
        }) = options.viewport
        {
            let (columns, rows) = (u32::from(geometry.columns), u32::from(geometry.rows));
            if w == 0 || h == 0 || x.saturating_add(w) > columns || y.saturating_add(h) > rows {
                return Err(ServiceError::InvalidInput(format!(
                    "viewport source rectangle {x},{y},{w},{h} is not within the {columns}x{rows} frame of \
                     instance {}",
                    record.sop_instance_uid
                )));
            }
        }
        let number = |key: &str| metadata[key]["Value"][0].as_f64();
        let window = match (number("00281050"), number("00281051")) {
            (Some(center), Some(width)) if width > 0.0 => Some(Window {
                center,
                width,
                function: match metadata["00281056"]["Value"][0].as_str().map(str::trim) {
                    Some("SIGMOID") => VoiFunction::Sigmoid,
                    Some("LINEAR_EXACT") => VoiFunction::LinearExact,
                    _ => VoiFunction::Linear,
                },
            }),
            _ => None,
        };
        let mut attributes = RenderAttributes {
            geometry,
            rescale_slope: number("00281053").unwrap_or(1.0),
            rescale_intercept: number("00281052").unwrap_or(0.0),
            window,
            palette: None,
        };
        if attributes.geometry.photometric_interpretation.trim() == "PALETTE COLOR" {
            attributes.palette = Some(self.palette_of(&record, &metadata).await?);
        }

        let stored = record.transfer_syntax_uid.clone();
        let bytes: Bytes = match &layout {
            PixelDataLayout::Native {
                offset,
                frame_length,
                ..
            } => {
                let start = offset + u64::from(frame - 1) * frame_length;
                let read = self
                    .blobs
                    .get_range(&record.blob_key, start..start + frame_length)
                    .await
                    .map_err(|e| instance_storage_error(&record, e))?;
                if stored == EXPLICIT_VR_BIG_ENDIAN {
                    little_endian(read, attributes.geometry.bits_allocated)
                } else {
                    read
                }
            }
            PixelDataLayout::Encapsulated { frames } => {
                if !dicomweb_pixel::can_decode(&stored) {
                    return Err(cannot(format!(
                        "its transfer syntax {stored} is not decoded yet"
                    )));
                }
                let ranges: Vec<std::ops::Range<u64>> = frames
                    .get((frame - 1) as usize)
                    .map(|fragments| fragments.iter().map(|&(s, e)| s..e).collect())
                    .unwrap_or_default();
                let fragments = read_frames_together(&*self.blobs, &record.blob_key, &[ranges])
                    .await
                    .map_err(|e| instance_storage_error(&record, e))?;
                let fragments = fragments.into_iter().map(|f| f.to_vec()).collect();
                let geometry = attributes.geometry.clone();
                let (decoded, decoded_geometry) = on_codec_pool(move || {
                    dicomweb_pixel::decode_frame_as(&stored, &geometry, fragments)
                })
                .await?
                .map_err(|e| transcode_failure(&record, "a rendered image", e))?;
                attributes.geometry = decoded_geometry;
                Bytes::from(decoded)
            }
            PixelDataLayout::NotRangeReadable => {
                return Err(cannot(
                    "its frames cannot be read by range (deflated data set, or bit-packed pixels)"
                        .into(),
                ));
            }
        };
        let media_type = options.format.media_type();
        let rendered =
            on_codec_pool(move || dicomweb_pixel::render_frame(&bytes, &attributes, &options))
                .await?
                .map_err(|e| match e {
                    dicomweb_pixel::RenderError::BadOption(why) => ServiceError::InvalidInput(why),
                    other => cannot(other.to_string()),
                })?;
        let image = RenderedImage {
            media_type,
            bytes: Bytes::from(rendered),
        };
        self.rendered_cache.insert(cache_key, image.clone());
        Ok(image)
    }
}

impl StudiesService {
    /// The red, green and blue Palette Color Lookup Tables of a PALETTE COLOR instance: descriptors from its
    /// metadata, data (bulk values there) read from its file.
    async fn palette_of(
        &self,
        record: &InstanceRecord,
        metadata: &serde_json::Value,
    ) -> Result<[PaletteLut; 3]> {
        let cannot = |why: String| {
            ServiceError::NotAcceptable(format!(
                "instance {} cannot be rendered: {why}",
                record.sop_instance_uid
            ))
        };
        let mut tables = Vec::with_capacity(3);
        for (colour, descriptor_tag, data_tag, segmented_tag) in [
            (
                "red",
                "00281101",
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
            (
                "green",
                "00281102",
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
            (
                "blue",
                "00281103",
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
        ] {
            let values = metadata[descriptor_tag]["Value"].as_array();
            let descriptor: Vec<i64> = values
                .map(|v| v.iter().filter_map(serde_json::Value::as_i64).collect())
                .unwrap_or_default();
            let Ok(descriptor) = <[i64; 3]>::try_from(descriptor) else {
                return Err(cannot(format!(
                    "its {colour} palette colour table descriptor is missing or malformed"
                )));
            };
            // The table's data, else its segmented form (PS3.3 C.7.9.2), which some ultrasound devices write.
            let table = match self.bulk_value(record, data_tag).await? {
                Some(data) => PaletteLut::from_descriptor(descriptor, &data),
                None => match self.bulk_value(record, segmented_tag).await? {
                    Some(data) => PaletteLut::from_segmented(descriptor, &data),
                    None => {
                        return Err(cannot(format!(
                            "its {colour} palette colour table data is missing"
                        )));
                    }
                },
            };
            tables.push(table.map_err(|e| cannot(e.to_string()))?);
        }
        let [red, green, blue]: [PaletteLut; 3] = tables
            .try_into()
            .map_err(|_| ServiceError::Internal("three palette tables".into()))?;
        Ok([red, green, blue])
    }

    /// The bytes of a top-level bulk value of `record` (little endian), or `None` when it has none.
    async fn bulk_value(
        &self,
        record: &InstanceRecord,
        tag: dicom_core::Tag,
    ) -> Result<Option<Vec<u8>>> {
        match self
            .bulk_data_of_record(record.clone(), &AttributePath::top_level(tag), None)
            .await
        {
            Ok(BulkData::Value(value)) => {
                let chunks: Vec<Bytes> = futures::TryStreamExt::try_collect(value.body).await?;
                Ok(Some(chunks.concat()))
            }
            Ok(BulkData::EncapsulatedPixelData { .. }) | Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Why the stored pixel data of `record` cannot be decoded for rendering, if it cannot (read from its catalogue
/// record: no read of the file).
fn why_not_renderable(record: &InstanceRecord) -> Option<String> {
    let layout: PixelDataLayout = serde_json::from_str(record.pixel_layout.as_deref()?).ok()?;
    match layout {
        PixelDataLayout::Native { .. } => None,
        PixelDataLayout::Encapsulated { .. } => {
            (!dicomweb_pixel::can_decode(&record.transfer_syntax_uid)).then(|| {
                format!(
                    "its transfer syntax {} is not decoded yet",
                    record.transfer_syntax_uid
                )
            })
        }
        PixelDataLayout::NotRangeReadable => Some(
            "its frames cannot be read by range (deflated data set, or bit-packed pixels)".into(),
        ),
    }
}
