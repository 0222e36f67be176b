//! Pixel work for a DICOM archive: giving a stored instance (or its frames) to a client in the transfer
//! syntax it asks for.
//!
//! Native instances (Implicit VR Little Endian, Explicit VR Little Endian, Explicit VR Big Endian, Deflated
//! Explicit VR Little Endian) are re-encoded in another native syntax, and big-endian native frames are
//! byte-swapped to little endian ([`frame_to_little_endian`]). Compressed pixel data is decoded to native
//! ([`can_decode`]: RLE, JPEG-LS and JPEG 2000 through dicom-pixeldata; every JPEG through libjpeg-turbo; HTJ2K
//! through OpenJPH), for whole instances ([`transcode`]) and for single frames from their stored fragments
//! ([`decode_frame`]). Native frames are encoded ([`can_encode`], [`encode_frame`]) in RLE Lossless, JPEG 2000
//! lossless, HTJ2K lossless, JPEG-LS lossless, JPEG lossless SV1 and (8-bit data, lossy) JPEG baseline;
//! [`why_not_encodable`] says which pixel formats each takes. Frames are rendered as JPEG or PNG
//! ([`render_frame`]). [`can_transcode`] says which pairs work; the caller answers 406 for the others.
//!
//! No HTTP, no storage: bytes in, bytes out, on the caller's thread (CPU work: run it on a blocking pool).
//!
//! ```
//! use dicom_core::{DataElement, PrimitiveValue, VR};
//! use dicom_dictionary_std::tags;
//! use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
//! use dicomweb_pixel::{EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, can_transcode, transcode};
//!
//! // A 2x2 16-bit image stored big endian.
//! let mut dataset = InMemDicomObject::new_empty();
//! dataset.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("1.2.3.4")));
//! dataset.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.7")));
//! dataset.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![1, 2, 300, 40000].into())));
//! let meta = FileMetaTableBuilder::new()
//!     .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
//!     .media_storage_sop_instance_uid("1.2.3.4")
//!     .transfer_syntax(EXPLICIT_VR_BIG_ENDIAN);
//! let mut part10 = Vec::new();
//! dataset.with_meta(meta).unwrap().write_all(&mut part10).unwrap();
//!
//! assert!(can_transcode(EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN));
//! let little = transcode(&part10, EXPLICIT_VR_LITTLE_ENDIAN, u64::MAX).unwrap();
//! let read = dicomweb_pixel::read_part10(&little).unwrap();
//! assert_eq!(read.meta().transfer_syntax(), EXPLICIT_VR_LITTLE_ENDIAN);
//! assert_eq!(read.element(tags::PIXEL_DATA).unwrap().to_multi_int::<u16>().unwrap(), [1, 2, 300, 40000]);
//! ```

mod decode;
mod encode;
mod htj2k;
mod j2k;
mod render;
mod rle;
mod streamed;
mod transcode;
mod turbo;

pub use render::{
    ImageFormat, PaletteLut, RenderAttributes, RenderError, RenderOptions, Viewport, VoiFunction,
    Window, render_frame,
};

pub use decode::{DECODED, FrameGeometry, can_decode, decode_frame, decode_frame_as};
pub use encode::{
    ENCODED, EncodedFrame, HTJ2K_LOSSLESS, JPEG_2000_LOSSLESS, JPEG_BASELINE, JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS, RLE_LOSSLESS, can_encode, encode_frame, is_lossy, transcode_frame,
    transcode_frame_described, why_not_encodable, why_not_transcodable,
};
pub use streamed::{FrameWriter, StreamedTranscode, why_not_streamable};
pub use transcode::{
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN, TranscodeError, can_transcode, frame_to_little_endian, is_native,
    native_frames, read_part10, transcode,
};
