//! UN elements of undefined length in explicit VR transfer syntaxes (PS3.5 6.2.2).
//!
//! Such an element is a sequence whose content is encoded in Implicit VR Little Endian, whatever the transfer
//! syntax (a writer that did not know the attribute was an SQ kept its bytes as they were). dicom-rs's dataset
//! reader turns any undefined-length element into a sequence but keeps decoding its content as explicit VR, and
//! fails on it. [`UnAwareDecoder`] sits between the reader and the stream decoder and decodes element and item
//! headers as implicit VR little endian from the header of such a UN element to its sequence delimiter, so the
//! content is read as a sequence, as pydicom reads it. Everything else goes to the inner decoder unchanged.
//!
//! To know where that region ends it tracks the open undefined-length elements (sequences, UN, encapsulated
//! pixel data: all end with a sequence delimiter); the parser's [`crate::MAX_SEQUENCE_DEPTH`] bounds their
//! nesting, and a missing delimiter ends the stream inside an open sequence, which the parser reports as
//! truncated.

use std::io::Seek;

use dicom_core::VR;
use dicom_core::header::{DataElementHeader, SequenceItemHeader};
use dicom_core::value::PrimitiveValue;
use dicom_encoding::decode::Decode;
use dicom_encoding::decode::implicit_le::ImplicitVRLittleEndianDecoder;
use dicom_parser::stateful::decode::{Error, Result, StatefulDecode};

/// An element or item header: tag and 32-bit length, in both encodings of the region.
const HEADER_LENGTH: u32 = 8;

pub(crate) struct UnAwareDecoder<D> {
    inner: D,
    /// The transfer syntax has explicit VR (in implicit VR, no element says it is UN).
    explicit_vr: bool,
    /// One entry per open undefined-length element: whether its content is implicit VR.
    open_undefined: Vec<bool>,
}

impl<D: StatefulDecode> UnAwareDecoder<D> {
    pub(crate) fn new(inner: D, explicit_vr: bool) -> Self {
        UnAwareDecoder {
            inner,
            explicit_vr,
            open_undefined: Vec::new(),
        }
    }

    fn in_implicit_region(&self) -> bool {
        self.open_undefined.last().copied().unwrap_or(false)
    }

    /// The next 8 raw bytes (fewer at the end of the stream).
    fn raw_header(&mut self) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(HEADER_LENGTH as usize);
        self.inner.read_to(HEADER_LENGTH, &mut bytes)?;
        Ok(bytes)
    }
}

impl<D: StatefulDecode> StatefulDecode for UnAwareDecoder<D> {
    type Reader = D::Reader;

    fn decode_header(&mut self) -> Result<DataElementHeader> {
        let header = if self.in_implicit_region() {
            let position = self.inner.position();
            let bytes = self.raw_header()?;
            // A short read gives the decoder's own end-of-stream error, which the reader handles as for any
            // header.
            ImplicitVRLittleEndianDecoder::default()
                .decode_header(&mut bytes.as_slice())
                .map(|(header, _)| header)
                .map_err(|source| Error::DecodeElementHeader { position, source })?
        } else {
            self.inner.decode_header()?
        };
        if header.len.is_undefined() && header.tag.group() != 0xFFFE {
            let implicit = self.in_implicit_region() || (self.explicit_vr && header.vr == VR::UN);
            self.open_undefined.push(implicit);
        }
        Ok(header)
    }

    fn decode_item_header(&mut self) -> Result<SequenceItemHeader> {
        let header = if self.in_implicit_region() {
            let position = self.inner.position();
            let bytes = self.raw_header()?;
            ImplicitVRLittleEndianDecoder::default()
                .decode_item_header(&mut bytes.as_slice())
                .map_err(|source| Error::DecodeItemHeader { position, source })?
        } else {
            self.inner.decode_item_header()?
        };
        if header == SequenceItemHeader::SequenceDelimiter {
            self.open_undefined.pop();
        }
        Ok(header)
    }

    fn read_value(&mut self, header: &DataElementHeader) -> Result<PrimitiveValue> {
        self.inner.read_value(header)
    }

    fn read_value_preserved(&mut self, header: &DataElementHeader) -> Result<PrimitiveValue> {
        self.inner.read_value_preserved(header)
    }

    fn read_value_bytes(&mut self, header: &DataElementHeader) -> Result<PrimitiveValue> {
        self.inner.read_value_bytes(header)
    }

    fn read_to_vec(&mut self, length: u32, vec: &mut Vec<u8>) -> Result<()> {
        self.inner.read_to_vec(length, vec)
    }

    fn read_u32_to_vec(&mut self, length: u32, vec: &mut Vec<u32>) -> Result<()> {
        self.inner.read_u32_to_vec(length, vec)
    }

    fn read_to<W>(&mut self, length: u32, out: W) -> Result<()>
    where
        Self: Sized,
        W: std::io::Write,
    {
        self.inner.read_to(length, out)
    }

    fn skip_bytes(&mut self, length: u32) -> Result<()> {
        self.inner.skip_bytes(length)
    }

    fn seek(&mut self, position: u64) -> Result<()>
    where
        Self::Reader: Seek,
    {
        self.inner.seek(position)
    }

    fn position(&self) -> u64 {
        self.inner.position()
    }
}
