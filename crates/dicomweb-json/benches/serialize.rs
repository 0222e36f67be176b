//! Criterion micro-benchmarks of DICOM JSON: writing the metadata of a typical image instance (what a store
//! precomputes and a series metadata request concatenates) and reading it back. `cargo bench -p dicomweb-json`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dicomweb_json::{
    JsonOptions, dataset_from_json_slice, dataset_to_json_bytes, dataset_to_json_bytes_within,
};
use std::hint::black_box;

#[path = "../tests/common/mod.rs"]
mod common;

fn json(c: &mut Criterion) {
    let options = JsonOptions::default();
    let mut group = c.benchmark_group("DICOM JSON");
    let cases = [
        ("golden data set (every VR rule)", common::golden_dataset()),
        ("CT_small (pydicom test file)", common::open("CT_small")),
        ("MR_small (pydicom test file)", common::open("MR_small")),
    ];
    for (name, dataset) in cases {
        let bytes = dataset_to_json_bytes(&dataset, &options);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("write {name}"), |b| {
            b.iter(|| dataset_to_json_bytes(black_box(&dataset), &options))
        });
        // As a store writes it: large values left out, within the per-instance limit.
        let bounded = JsonOptions {
            large_value_bytes: Some(64 * 1024),
            ..JsonOptions::default()
        };
        group.bench_function(format!("write within limits {name}"), |b| {
            b.iter(|| dataset_to_json_bytes_within(black_box(&dataset), &bounded, 4 << 20))
        });
        group.bench_function(format!("read {name}"), |b| {
            b.iter(|| dataset_from_json_slice(black_box(&bytes)).expect("valid DICOM JSON"))
        });
    }
    group.finish();
}

criterion_group!(benches, json);
criterion_main!(benches);
