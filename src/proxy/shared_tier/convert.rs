//! The local store's parsed meta ([`StoredMeta`]) to and from the shared tier's wire object.

use bytes::Bytes;
use http::Version;
use pingora::http::ResponseHeader;

use crate::cache::shared::wire::SharedObject;
use crate::proxy::cache_storage::{StaleWindows, StoredMeta};

fn version_code(version: Version) -> u8 {
    match version {
        Version::HTTP_09 => 9,
        Version::HTTP_10 => 10,
        Version::HTTP_2 => 20,
        Version::HTTP_3 => 30,
        _ => 11,
    }
}

fn version_of(code: u8) -> Version {
    match code {
        9 => Version::HTTP_09,
        10 => Version::HTTP_10,
        20 => Version::HTTP_2,
        30 => Version::HTTP_3,
        _ => Version::HTTP_11,
    }
}

/// The wire object of a stored response.
pub(super) fn to_shared(
    meta: &StoredMeta,
    url: &str,
    tags: &[Box<str>],
    body: Bytes,
) -> SharedObject {
    let header = &meta.header;
    let header_case = header.has_case();
    let headers = if header_case {
        header
            .case_header_iter()
            .map(|(name, value)| {
                (
                    Bytes::copy_from_slice(name.as_slice()),
                    Bytes::copy_from_slice(value.as_bytes()),
                )
            })
            .collect()
    } else {
        header
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    Bytes::copy_from_slice(name.as_str().as_bytes()),
                    Bytes::copy_from_slice(value.as_bytes()),
                )
            })
            .collect()
    };
    SharedObject {
        fresh_until: meta.fresh_until,
        created: meta.created,
        updated: meta.updated,
        stale_while_revalidate: meta.stale_while_revalidate,
        stale_if_error: meta.stale_if_error,
        windows: meta.windows.map(|w| (w.if_error, w.on_open)),
        variance: meta.variance,
        status: header.status.as_u16(),
        version: version_code(header.version),
        reason: header
            .get_reason_phrase()
            .map(|r| Bytes::copy_from_slice(r.as_bytes())),
        header_case,
        headers,
        url: url.to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        body,
    }
}

/// The stored meta of a wire object; `None` if its header does not rebuild (a value written
/// by something else).
pub(super) fn from_shared(object: &SharedObject) -> Option<StoredMeta> {
    let size = Some(object.headers.len());
    let mut header = if object.header_case {
        ResponseHeader::build(object.status, size).ok()?
    } else {
        ResponseHeader::build_no_case(object.status, size).ok()?
    };
    header.set_version(version_of(object.version));
    if let Some(reason) = &object.reason {
        let reason = std::str::from_utf8(reason).ok()?;
        header.set_reason_phrase(Some(reason)).ok()?;
    }
    for (name, value) in &object.headers {
        let value = http::HeaderValue::from_maybe_shared(value.clone()).ok()?;
        header.append_header(name.clone(), value).ok()?;
    }
    Some(StoredMeta {
        fresh_until: object.fresh_until,
        created: object.created,
        updated: object.updated,
        stale_while_revalidate: object.stale_while_revalidate,
        stale_if_error: object.stale_if_error,
        windows: object
            .windows
            .map(|(if_error, on_open)| StaleWindows { if_error, on_open }),
        variance: object.variance,
        header,
    })
}
