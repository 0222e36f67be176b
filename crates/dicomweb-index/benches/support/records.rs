//! Synthetic instance records shared by the index's benchmarks and measurement examples: 100 instances a study,
//! 10 a series, 50 patients.

// Each benchmark or example that includes this file uses a part of it.
#![allow(dead_code)]

use dicomweb_index::InstanceRecord;

pub const PATIENT_ID: u32 = 0x0010_0020;
pub const PATIENT_NAME: u32 = 0x0010_0010;
pub const STUDY_DATE: u32 = 0x0008_0020;
pub const MODALITY: u32 = 0x0008_0060;
const FAMILY_NAMES: [&str; 5] = ["Smith", "Müller", "Garcia", "Rossi", "Novak"];

pub fn study_uid(study: u64) -> String {
    format!("1.2.826.0.1.3680043.10.1.{study}")
}

pub fn record(i: u64) -> InstanceRecord {
    let study = i / 100;
    let series = i / 10;
    let patient = study % 50;
    InstanceRecord {
        study_instance_uid: study_uid(study),
        series_instance_uid: format!("1.2.826.0.1.3680043.10.2.{series}"),
        sop_instance_uid: format!("1.2.826.0.1.3680043.10.3.{i}"),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
        blob_key: format!("blobs/{i}"),
        size: 500_000,
        stored_at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i as i64),
        metadata: vec![b' '; 2048],
        pixel_layout: None,
        attributes: vec![
            (PATIENT_ID, vec![format!("PAT{patient:03}")]),
            (
                PATIENT_NAME,
                vec![format!(
                    "{}^Given{patient}",
                    FAMILY_NAMES[(patient % 5) as usize]
                )],
            ),
            (
                STUDY_DATE,
                vec![format!("2024{:02}{:02}", study % 12 + 1, study % 28 + 1)],
            ),
            (
                MODALITY,
                vec![["CT", "MR", "US"][(series % 3) as usize].into()],
            ),
            (0x0020_0013, vec![(i % 10).to_string()]),
        ],
    }
}
