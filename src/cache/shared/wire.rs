//! A stored response as the bytes of one Redis value: the parsed meta the local store keeps
//! (times, stale windows, variance, status and header fields with their case), the URL and
//! tags the purge indexes need, and the body.
//!
//! A small length-prefixed binary layout, written by hand: the body must come back as a slice
//! of the value Redis returned (no copy, no escaping, as for a local hit), header names keep
//! their case, and the few fixed fields do not justify a serialisation crate. A value that
//! does not decode (another version, another program's key) is a miss, never an error.

use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Changes whenever the layout does: a replica of another version then sees misses.
const MAGIC: &[u8; 4] = b"ORW1";

/// A response as the shared tier stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedObject {
    pub(crate) fresh_until: SystemTime,
    pub(crate) created: SystemTime,
    /// When it was last validated (what `Age` counts from).
    pub(crate) updated: SystemTime,
    pub(crate) stale_while_revalidate: u32,
    pub(crate) stale_if_error: u32,
    /// The route's split of `stale_if_error`: (if_error, on_open).
    pub(crate) windows: Option<(u32, u32)>,
    pub(crate) variance: Option<[u8; 16]>,
    pub(crate) status: u16,
    /// HTTP version as `10`, `11`, `20`…
    pub(crate) version: u8,
    pub(crate) reason: Option<Bytes>,
    /// Whether the names below keep the case the origin sent.
    pub(crate) header_case: bool,
    pub(crate) headers: Vec<(Bytes, Bytes)>,
    pub(crate) url: String,
    pub(crate) tags: Vec<String>,
    pub(crate) body: Bytes,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn time(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) -> Option<()> {
    out.put_u32(u32::try_from(bytes.len()).ok()?);
    out.put_slice(bytes);
    Some(())
}

fn get_u32(input: &mut Bytes) -> Option<u32> {
    (input.remaining() >= 4).then(|| input.get_u32())
}

fn get_bytes(input: &mut Bytes) -> Option<Bytes> {
    let len = usize::try_from(get_u32(input)?).ok()?;
    (input.remaining() >= len).then(|| input.split_to(len))
}

fn get_string(input: &mut Bytes) -> Option<String> {
    String::from_utf8(get_bytes(input)?.to_vec()).ok()
}

impl SharedObject {
    /// The Redis value; `None` if a length does not fit the layout (a body over 4 GiB).
    pub(crate) fn encode(&self) -> Option<Vec<u8>> {
        let header_bytes: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 8)
            .sum();
        let mut out = BytesMut::with_capacity(96 + header_bytes + self.url.len() + self.body.len());
        out.put_slice(MAGIC);
        out.put_u64(millis(self.fresh_until));
        out.put_u64(millis(self.created));
        out.put_u64(millis(self.updated));
        out.put_u32(self.stale_while_revalidate);
        out.put_u32(self.stale_if_error);
        let flags = u8::from(self.windows.is_some())
            | u8::from(self.variance.is_some()) << 1
            | u8::from(self.header_case) << 2;
        out.put_u8(flags);
        if let Some((if_error, on_open)) = self.windows {
            out.put_u32(if_error);
            out.put_u32(on_open);
        }
        if let Some(variance) = self.variance {
            out.put_slice(&variance);
        }
        out.put_u16(self.status);
        out.put_u8(self.version);
        put_bytes(&mut out, self.reason.as_deref().unwrap_or_default())?;
        out.put_u32(u32::try_from(self.headers.len()).ok()?);
        for (name, value) in &self.headers {
            put_bytes(&mut out, name)?;
            put_bytes(&mut out, value)?;
        }
        put_bytes(&mut out, self.url.as_bytes())?;
        out.put_u32(u32::try_from(self.tags.len()).ok()?);
        for tag in &self.tags {
            put_bytes(&mut out, tag.as_bytes())?;
        }
        put_bytes(&mut out, &self.body)?;
        Some(out.to_vec())
    }

    /// The object in a Redis value; its byte fields are slices of `input`.
    pub(crate) fn decode(mut input: Bytes) -> Option<SharedObject> {
        if input.remaining() < MAGIC.len() || &input[..MAGIC.len()] != MAGIC {
            return None;
        }
        input.advance(MAGIC.len());
        if input.remaining() < 8 * 3 + 4 * 2 + 1 {
            return None;
        }
        let fresh_until = time(input.get_u64());
        let created = time(input.get_u64());
        let updated = time(input.get_u64());
        let stale_while_revalidate = input.get_u32();
        let stale_if_error = input.get_u32();
        let flags = input.get_u8();
        let windows = if flags & 1 != 0 {
            Some((get_u32(&mut input)?, get_u32(&mut input)?))
        } else {
            None
        };
        let variance = if flags & 2 != 0 {
            if input.remaining() < 16 {
                return None;
            }
            let mut variance = [0; 16];
            input.copy_to_slice(&mut variance);
            Some(variance)
        } else {
            None
        };
        if input.remaining() < 3 {
            return None;
        }
        let status = input.get_u16();
        let version = input.get_u8();
        let reason = Some(get_bytes(&mut input)?).filter(|r| !r.is_empty());
        let count = get_u32(&mut input)?;
        let mut headers = Vec::new();
        for _ in 0..count {
            headers.push((get_bytes(&mut input)?, get_bytes(&mut input)?));
        }
        let url = get_string(&mut input)?;
        let count = get_u32(&mut input)?;
        let mut tags = Vec::new();
        for _ in 0..count {
            tags.push(get_string(&mut input)?);
        }
        let body = get_bytes(&mut input)?;
        if input.has_remaining() {
            return None;
        }
        Some(SharedObject {
            fresh_until,
            created,
            updated,
            stale_while_revalidate,
            stale_if_error,
            windows,
            variance,
            status,
            version,
            reason,
            header_case: flags & 4 != 0,
            headers,
            url,
            tags,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SharedObject {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_millis(s);
        SharedObject {
            fresh_until: t(1_700_000_060_000),
            created: t(1_700_000_000_000),
            updated: t(1_700_000_030_000),
            stale_while_revalidate: 30,
            stale_if_error: 600,
            windows: Some((600, 60)),
            variance: Some([7; 16]),
            status: 200,
            version: 11,
            reason: Some(Bytes::from_static(b"OK")),
            header_case: true,
            headers: vec![
                (
                    Bytes::from_static(b"Content-Type"),
                    Bytes::from_static(b"text/plain"),
                ),
                (Bytes::from_static(b"X-Tags"), Bytes::from_static(b"a b")),
                (Bytes::from_static(b"X-Tags"), Bytes::from_static(b"c")),
            ],
            url: "http://h/a?b".into(),
            tags: vec!["a".into(), "b".into()],
            body: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn round_trip() {
        for object in [
            sample(),
            SharedObject {
                windows: None,
                variance: None,
                reason: None,
                header_case: false,
                tags: Vec::new(),
                body: Bytes::new(),
                ..sample()
            },
        ] {
            let bytes = Bytes::from(object.encode().unwrap());
            assert_eq!(SharedObject::decode(bytes), Some(object));
        }
    }

    #[test]
    fn anything_else_is_not_an_object() {
        let good = sample().encode().unwrap();
        assert_eq!(SharedObject::decode(Bytes::from_static(b"")), None);
        assert_eq!(SharedObject::decode(Bytes::from_static(b"ORW2xxxx")), None);
        for cut in 0..good.len() {
            assert_eq!(
                SharedObject::decode(Bytes::from(good[..cut].to_vec())),
                None,
                "{cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(SharedObject::decode(Bytes::from(longer)), None);
    }

    proptest::proptest! {
        #[test]
        fn decoding_is_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut input = MAGIC.to_vec();
            input.extend(bytes);
            let _ = SharedObject::decode(Bytes::from(input));
        }
    }
}
