//! Errors from reading DICOM JSON. Messages reach HTTP 400 responses, so each one names the
//! attribute (with its path through sequence items) and what was wrong with it.

use dicom_core::{Tag, VR};

/// Why a DICOM JSON document could not be turned into a data set.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The bytes are not JSON at all.
    #[error("invalid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// A data set (the document itself or a sequence item) is not a JSON object.
    #[error("expected a DICOM JSON object (attributes keyed by tag) {}", describe_location(.location))]
    NotAnObject {
        /// Empty for the top level, else the sequence item, e.g. `(0008,1115)[0]`.
        location: String,
    },
    /// An attribute key is not a tag.
    #[error(
        "invalid attribute key {key:?} {}: expected a tag as 8 hexadecimal digits (\"GGGGEEEE\")",
        describe_location(.location)
    )]
    InvalidTagKey {
        /// The offending key.
        key: String,
        /// Empty for the top level, else the sequence item, e.g. `(0008,1115)[0]`.
        location: String,
    },
    /// An attribute is malformed.
    #[error("attribute {attribute}: {problem}")]
    Attribute {
        /// The tag, prefixed with the sequence items it is nested in, e.g.
        /// `(0008,1115)[0].(0020,000E)`.
        attribute: String,
        /// What is wrong with it.
        problem: AttributeProblem,
    },
}

fn describe_location(location: &str) -> String {
    if location.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in sequence item {location}")
    }
}

impl JsonError {
    pub(crate) fn attribute(tag: Tag, problem: AttributeProblem) -> Self {
        JsonError::Attribute {
            attribute: tag.to_string(),
            problem,
        }
    }

    /// Prefixes the error's location with the sequence item it was found in.
    pub(crate) fn nested_in(self, sequence: Tag, index: usize) -> Self {
        let prefix = |inner: String| {
            if inner.is_empty() {
                format!("{sequence}[{index}]")
            } else {
                format!("{sequence}[{index}].{inner}")
            }
        };
        match self {
            JsonError::Syntax(e) => JsonError::Syntax(e),
            JsonError::NotAnObject { location } => JsonError::NotAnObject {
                location: prefix(location),
            },
            JsonError::InvalidTagKey { key, location } => JsonError::InvalidTagKey {
                key,
                location: prefix(location),
            },
            JsonError::Attribute { attribute, problem } => JsonError::Attribute {
                attribute: prefix(attribute),
                problem,
            },
        }
    }
}

/// What is wrong with one attribute of a DICOM JSON object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeProblem {
    /// The attribute is not a JSON object.
    #[error("expected a JSON object with a \"vr\"")]
    NotAnObject,
    /// `"vr"` is absent.
    #[error("missing \"vr\"")]
    MissingVr,
    /// `"vr"` is not one of the DICOM value representations.
    #[error("unknown VR {0:?}")]
    UnknownVr(String),
    /// More than one of `"Value"`, `"InlineBinary"` and `"BulkDataURI"` is present.
    #[error("has more than one of \"Value\", \"InlineBinary\" and \"BulkDataURI\"")]
    ConflictingValueFields,
    /// `"Value"` is not an array.
    #[error("\"Value\" must be an array")]
    ValueNotArray,
    /// The field cannot be used with this VR (e.g. `"InlineBinary"` for a CS).
    #[error("\"{field}\" is not supported for VR {vr}")]
    FieldNotAllowed {
        /// `"Value"`, `"InlineBinary"` or `"BulkDataURI"`.
        field: &'static str,
        /// The attribute's VR.
        vr: VR,
    },
    /// `"InlineBinary"` or `"BulkDataURI"` is not a string (or a one-string array).
    #[error("\"{field}\" must be a string")]
    NotAString {
        /// `"InlineBinary"` or `"BulkDataURI"`.
        field: &'static str,
    },
    /// A single-valued VR (LT, ST, UT, UR) has several values.
    #[error("VR {vr} holds a single value but \"Value\" has {count}")]
    TooManyValues {
        /// The attribute's VR.
        vr: VR,
        /// Number of items in `"Value"`.
        count: usize,
    },
    /// An item of `"Value"` does not fit the VR.
    #[error("Value[{index}] is not valid for VR {vr}: expected {expected}")]
    InvalidValue {
        /// Zero-based position in `"Value"`.
        index: usize,
        /// The attribute's VR.
        vr: VR,
        /// What the item should have been.
        expected: &'static str,
    },
    /// `"InlineBinary"` is not base64.
    #[error("\"InlineBinary\" is not valid base64: {0}")]
    InvalidBase64(#[from] base64::DecodeError),
    /// The decoded binary value cannot be split into values of the VR.
    #[error("\"InlineBinary\" has {len} bytes, not a multiple of {unit} as VR {vr} requires")]
    BinaryLength {
        /// Decoded length in bytes.
        len: usize,
        /// Size of one value of the VR.
        unit: usize,
        /// The attribute's VR.
        vr: VR,
    },
}
