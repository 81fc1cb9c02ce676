//! Streaming encoders for the three codings, flushed after every input chunk.
//!
//! Pingora ships encoders too (`Algorithm::compressor`), but they only emit output when their
//! internal buffers fill or the body ends, so a server-sent event or a long poll written in
//! small pieces would sit in the encoder until the response finished. These wrap the same
//! crates (flate2 with zlib-ng, brotli 3.5, zstd — the versions Pingora already links, so
//! nothing is compiled twice) and end every `encode` call with a sync flush: whatever came in
//! goes out, decodable, at the cost of a few bytes of block framing per chunk.
//!
//! Memory per response is bounded by the codings' windows: 32 KiB for gzip, `BROTLI_WINDOW_BITS`
//! for brotli, and zstd's window for the level (1–8 MiB at levels 1–19), never by the body.

use std::io::{self, Write};

use bytes::Bytes;
use flate2::write::GzEncoder;

use crate::config::policy::{Coding, CompressionPolicy};

/// 2^19 = 512 KiB: brotli's default window is 4 MiB, which costs memory per concurrent
/// response for little gain on web-sized bodies (the same value Pingora uses).
const BROTLI_WINDOW_BITS: u32 = 19;
/// The brotli writer's internal staging buffer.
const BROTLI_BUFFER: usize = 4096;

/// One response's encoder. Feed it the body in order; the last call has `end = true`.
pub struct Encoder {
    coding: Coding,
    state: State,
    bytes_in: u64,
    bytes_out: u64,
}

enum State {
    Gzip(GzEncoder<Vec<u8>>),
    // Boxed: the brotli writer's state is several KiB of inline arrays.
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Finished,
}

impl Encoder {
    /// An encoder for `coding` at the route's level for it. Levels were range-checked when the
    /// policy was compiled; the codings clamp anything else themselves.
    pub fn new(coding: Coding, policy: &CompressionPolicy) -> io::Result<Encoder> {
        let state = match coding {
            Coding::Gzip => State::Gzip(GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(policy.gzip_level),
            )),
            Coding::Br => State::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                policy.brotli_level,
                BROTLI_WINDOW_BITS,
            ))),
            Coding::Zstd => State::Zstd(zstd::stream::write::Encoder::new(
                Vec::new(),
                policy.zstd_level,
            )?),
        };
        Ok(Encoder {
            coding,
            state,
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    pub(crate) fn coding(&self) -> &Coding {
        &self.coding
    }

    /// Compresses `input` and returns every byte the coding can emit so far: all of `input`
    /// is decodable from the output once this returns. With `end`, the stream is closed
    /// (trailer written); calls after that return nothing.
    pub fn encode(&mut self, input: &[u8], end: bool) -> io::Result<Bytes> {
        self.bytes_in += input.len() as u64;
        let out = match &mut self.state {
            State::Finished => return Ok(Bytes::new()),
            State::Gzip(w) => {
                w.write_all(input)?;
                if end {
                    w.try_finish()?;
                } else if !input.is_empty() {
                    w.flush()?;
                }
                std::mem::take(w.get_mut())
            }
            State::Brotli(w) => {
                w.write_all(input)?;
                if !end {
                    if !input.is_empty() {
                        w.flush()?;
                    }
                    std::mem::take(w.get_mut())
                } else {
                    match std::mem::replace(&mut self.state, State::Finished) {
                        // `into_inner` writes the final meta-block.
                        State::Brotli(w) => w.into_inner(),
                        _ => Vec::new(),
                    }
                }
            }
            State::Zstd(w) => {
                w.write_all(input)?;
                if end {
                    w.do_finish()?;
                } else if !input.is_empty() {
                    w.flush()?;
                }
                std::mem::take(w.get_mut())
            }
        };
        if end {
            self.state = State::Finished;
        }
        self.bytes_out += out.len() as u64;
        Ok(Bytes::from(out))
    }

    /// Body bytes fed in and encoded bytes produced so far.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.bytes_in, self.bytes_out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn policy() -> CompressionPolicy {
        CompressionPolicy {
            enabled: true,
            algorithms: vec![Coding::Zstd, Coding::Br, Coding::Gzip],
            min_size: 0,
            gzip_level: 6,
            brotli_level: 4,
            zstd_level: 3,
            content_types: vec![],
            upstream_identity: true,
        }
    }

    fn decode(coding: &Coding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Coding::Br => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Coding::Zstd => {
                out = zstd::stream::decode_all(data).unwrap();
            }
        }
        out
    }

    /// Decodes as much of a still-open stream as the bytes allow.
    fn decode_prefix(coding: &Coding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut reader: Box<dyn Read> = match coding {
            Coding::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
            Coding::Br => Box::new(brotli::Decompressor::new(data, 4096)),
            Coding::Zstd => Box::new(zstd::stream::read::Decoder::new(data).unwrap()),
        };
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    const ALL: [Coding; 3] = [Coding::Gzip, Coding::Br, Coding::Zstd];

    #[test]
    fn every_coding_round_trips_a_body_fed_in_pieces() {
        let body: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"ok\":true}}\n").into_bytes())
            .take(300_000)
            .collect();
        for coding in ALL {
            let mut enc = Encoder::new(coding.clone(), &policy()).unwrap();
            let mut out = Vec::new();
            for piece in body.chunks(7_919) {
                out.extend_from_slice(&enc.encode(piece, false).unwrap());
            }
            out.extend_from_slice(&enc.encode(&[], true).unwrap());
            assert_eq!(decode(&coding, &out), body, "{coding:?}");
            let (bytes_in, bytes_out) = enc.totals();
            assert_eq!(bytes_in, body.len() as u64);
            assert_eq!(bytes_out, out.len() as u64);
            assert!(out.len() < body.len() / 4, "{coding:?}: {}", out.len());
        }
    }

    #[test]
    fn each_chunk_is_decodable_before_the_stream_ends() {
        for coding in ALL {
            let mut enc = Encoder::new(coding.clone(), &policy()).unwrap();
            let first = enc.encode(b"data: event one\n\n", false).unwrap();
            assert_eq!(
                decode_prefix(&coding, &first),
                b"data: event one\n\n",
                "{coding:?}"
            );
        }
    }

    #[test]
    fn an_empty_body_still_makes_a_valid_stream_and_finishing_twice_is_harmless() {
        for coding in ALL {
            let mut enc = Encoder::new(coding.clone(), &policy()).unwrap();
            let out = enc.encode(&[], true).unwrap();
            assert_eq!(decode(&coding, &out), b"", "{coding:?}");
            assert!(enc.encode(b"late", true).unwrap().is_empty());
        }
    }
}
