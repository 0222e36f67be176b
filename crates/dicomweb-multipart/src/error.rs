//! The single error type of the crate.

/// Everything that can go wrong while reading or writing a multipart body.
///
/// Apart from [`MultipartError::Source`], every variant describes a defect of the
/// client's body or `Content-Type`, so its `Display` text is written to be shown
/// to the client (for example in an HTTP 400 response).
#[derive(Debug, thiserror::Error)]
pub enum MultipartError {
    /// The underlying byte stream failed (e.g. the client disconnected).
    #[error("reading the multipart body failed: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The stream ended without containing a single boundary delimiter.
    #[error(
        "multipart body does not contain the boundary delimiter announced in Content-Type \
         (expected a line \"--<boundary>\")"
    )]
    NoInitialBoundary,
    /// The stream ended before the closing delimiter (`--<boundary>--`).
    #[error(
        "multipart body ended before the closing boundary delimiter \"--<boundary>--\" \
         (truncated body?)"
    )]
    UnexpectedEof,
    /// A part's header block (including its terminating blank line) is larger than allowed.
    #[error("multipart part header block is larger than {limit} bytes")]
    HeaderTooLarge {
        /// The configured [`crate::ReaderLimits::max_header_bytes`].
        limit: usize,
    },
    /// A part header line (or the boundary line before it) could not be parsed.
    #[error("malformed multipart part header: {0}")]
    MalformedHeader(String),
    /// The body has more parts than allowed.
    #[error("multipart body has more than {limit} parts")]
    TooManyParts {
        /// The configured [`crate::ReaderLimits::max_parts`].
        limit: usize,
    },
    /// The boundary is missing from `Content-Type` or is not a valid RFC 2046 boundary.
    #[error("invalid multipart boundary: {0}")]
    InvalidBoundary(String),
}
