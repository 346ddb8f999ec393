//! object_store's errors as one-line `Error::Store`s: the fault kind a
//! caller acts on (retry or stop) and a short message naming the store,
//! the key and what happened, never a credential and never the multi-line
//! XML bodies servers send.
//!
//! The kind comes from the error's variant (object_store maps 401/403/404/
//! 409/412 to variants), a transport error's kind (`HttpError`), and else
//! the S3 error code of the response body (`<Code>NoSuchBucket</Code>`):
//! the protocol's own stable name of the error, not message text.

use libcore::{Error, StoreFault};
use object_store::client::{HttpError, HttpErrorKind};
use std::error::Error as StdError;

/// What names the store in messages, and what must never appear in them.
pub(crate) struct Context<'a> {
    pub location: &'a str,
    pub endpoint: &'a str,
    pub secrets: &'a [String],
}

/// S3 error codes that no retry fixes.
const PERMANENT_CODES: [&str; 14] = [
    "InvalidArgument",
    "InvalidRequest",
    "InvalidBucketName",
    "InvalidObjectName",
    "EntityTooLarge",
    "EntityTooSmall",
    "MalformedXML",
    "InvalidPart",
    "InvalidPartOrder",
    "MethodNotAllowed",
    "NotImplemented",
    "KeyTooLongError",
    "MetadataTooLarge",
    "InvalidStorageClass",
];

const DENIED_CODES: [&str; 7] = [
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "AccountProblem",
];

/// The errors of `e`'s source chain, outermost first.
fn chain(e: &object_store::Error) -> Vec<&(dyn StdError + 'static)> {
    let mut out: Vec<&(dyn StdError + 'static)> = vec![e];
    let mut cur: &(dyn StdError + 'static) = e;
    while let Some(next) = cur.source() {
        out.push(next);
        cur = next;
    }
    out
}

/// The S3 error code in a response body somewhere in the chain.
pub(crate) fn s3_code(e: &object_store::Error) -> Option<String> {
    chain(e).iter().find_map(|c| {
        let text = c.to_string();
        let start = text.find("<Code>")? + "<Code>".len();
        let len = text[start..].find("</Code>")?;
        let code = &text[start..start + len];
        code.bytes()
            .all(|b| b.is_ascii_alphanumeric())
            .then(|| code.to_string())
    })
}

fn transport_kind(e: &object_store::Error) -> Option<HttpErrorKind> {
    chain(e)
        .iter()
        .find_map(|c| c.downcast_ref::<HttpError>().map(|h| h.kind()))
}

/// True when the request surely never reached the server (so a
/// conditional write that failed this way did not happen).
pub(crate) fn never_sent(e: &object_store::Error) -> bool {
    matches!(transport_kind(e), Some(HttpErrorKind::Connect))
}

/// True for "no such bucket".
pub(crate) fn is_missing_bucket(e: &object_store::Error) -> bool {
    s3_code(e).as_deref() == Some("NoSuchBucket")
}

impl Context<'_> {
    /// A short, single-line, scrubbed form of the innermost cause.
    fn cause(&self, e: &object_store::Error) -> String {
        let inner = chain(e).last().map(|c| c.to_string()).unwrap_or_default();
        let line = inner.lines().next().unwrap_or("").trim();
        // Like libcore's I/O errors: the strerror text without its number.
        let line = match line.rfind(" (os error ") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut s: String = line.chars().take(160).collect();
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            s = s.replace(secret.as_str(), "***");
        }
        s
    }

    pub(crate) fn error(&self, key: &str, op: &str, e: &object_store::Error) -> Error {
        let (fault, what) = self.classify(op, e);
        let mut what = what;
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            what = what.replace(secret.as_str(), "***");
        }
        Error::store(self.location, key, fault, what.replace(['\n', '\r'], " "))
    }

    fn classify(&self, op: &str, e: &object_store::Error) -> (StoreFault, String) {
        use object_store::Error as E;
        let code = s3_code(e);
        let with_code = |s: &str| match &code {
            Some(c) => format!("{op}: {s} (S3 error {c})"),
            None => format!("{op}: {s}"),
        };
        match e {
            E::NotFound { .. } if code.as_deref() != Some("NoSuchKey") => (
                StoreFault::Missing,
                format!("{op}: no such bucket at {}", self.endpoint),
            ),
            E::NotFound { .. } => (StoreFault::Failed, with_code("not found")),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => (
                StoreFault::Denied,
                with_code("access denied, check the credentials"),
            ),
            E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => {
                (StoreFault::Failed, with_code("precondition failed"))
            }
            E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::InvalidPath { .. }
            | E::UnknownConfigurationKey { .. } => {
                (StoreFault::Invalid, format!("{op}: {}", self.cause(e)))
            }
            _ => self.classify_generic(op, e, code),
        }
    }

    fn classify_generic(
        &self,
        op: &str,
        e: &object_store::Error,
        code: Option<String>,
    ) -> (StoreFault, String) {
        let endpoint = self.endpoint;
        if let Some(kind) = transport_kind(e) {
            let what = match kind {
                HttpErrorKind::Connect => format!("cannot connect to {endpoint}"),
                HttpErrorKind::Timeout => format!("timed out talking to {endpoint}"),
                HttpErrorKind::Decode => format!("unreadable response from {endpoint}"),
                _ => format!("connection to {endpoint} lost"),
            };
            return (
                StoreFault::Transient,
                format!("{op}: {what}: {}", self.cause(e)),
            );
        }
        match code {
            Some(c) if c == "NoSuchBucket" => (
                StoreFault::Missing,
                format!("{op}: no such bucket at {endpoint}"),
            ),
            Some(c) if DENIED_CODES.contains(&c.as_str()) => (
                StoreFault::Denied,
                format!("{op}: access denied, check the credentials (S3 error {c})"),
            ),
            Some(c) if PERMANENT_CODES.contains(&c.as_str()) => {
                (StoreFault::Failed, format!("{op}: refused (S3 error {c})"))
            }
            Some(c) => (
                StoreFault::Transient,
                format!("{op}: server error from {endpoint} (S3 error {c})"),
            ),
            None => (
                StoreFault::Transient,
                format!("{op}: failed at {endpoint}: {}", self.cause(e)),
            ),
        }
    }
}
