//! Criterion micro-benchmarks of the multipart codec: reading a STOW-RS body (50 small parts, one large part)
//! as it arrives in 64 KiB chunks, and writing a WADO-RS body. `cargo bench -p dicomweb-multipart`.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dicomweb_multipart::{MultipartReader, MultipartWriter, encode_parts};
use futures::executor::block_on;
use futures::{StreamExt, stream};
use std::hint::black_box;

const BOUNDARY: &str = "benchBoundary0123456789";
const CHUNK: usize = 64 * 1024;

/// A body of `parts` parts of `size` bytes each (a pattern that never contains the boundary).
fn body(parts: usize, size: usize) -> Vec<u8> {
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::with_capacity(parts * (size + 64));
    for _ in 0..parts {
        out.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(&content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// Reads every part of `body`, fed in 64 KiB chunks; returns the bytes of content seen.
fn read_all(body: &Bytes) -> usize {
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..body.len())
        .step_by(CHUNK)
        .map(|at| Ok(body.slice(at..(at + CHUNK).min(body.len()))))
        .collect();
    let mut reader = MultipartReader::new(stream::iter(chunks), BOUNDARY);
    block_on(async {
        let mut seen = 0;
        while reader
            .next_part()
            .await
            .expect("a well-formed body")
            .is_some()
        {
            while let Some(chunk) = reader.next_chunk().await.expect("a well-formed body") {
                seen += chunk.len();
            }
        }
        seen
    })
}

fn reader(c: &mut Criterion) {
    let mut group = c.benchmark_group("multipart read");
    for (name, parts, size) in [
        ("50 parts of 10 KiB", 50, 10 * 1024),
        ("1 part of 8 MiB", 1, 8 * 1024 * 1024),
    ] {
        let body = Bytes::from(body(parts, size));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| b.iter(|| read_all(black_box(&body))));
    }
    group.finish();
}

fn writer(c: &mut Criterion) {
    let mut group = c.benchmark_group("multipart write");
    let content = Bytes::from(vec![7u8; 10 * 1024]);
    group.throughput(Throughput::Bytes(50 * content.len() as u64));
    group.bench_function("50 parts of 10 KiB", |b| {
        b.iter(|| {
            let parts = (0..50).map(|_| {
                let headers = vec![("Content-Type".to_owned(), "application/dicom".to_owned())];
                let body = stream::iter([Ok::<_, std::io::Error>(content.clone())]);
                Ok((headers, body))
            });
            let writer = MultipartWriter::with_boundary(BOUNDARY).expect("a valid boundary");
            let encoded = encode_parts(writer, stream::iter(parts.collect::<Vec<_>>()));
            block_on(
                encoded
                    .map(|chunk| chunk.map_or(0, |c| c.len()))
                    .fold(0, |sum, n| async move { sum + n }),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, reader, writer);
criterion_main!(benches);
