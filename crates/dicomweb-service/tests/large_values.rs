//! Instances with huge non-bulk values (a 1 MiB UT, a 100 KiB LO, thousands of long texts): they are stored
//! whole, but their metadata and their index terms stay bounded (issue 12, "hostile input", finding 4).

mod common;

use bytes::Bytes;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicomweb_index::{Index, Scope};
use dicomweb_service::{
    ChangeQuery, FailureReason, InstanceOutcome, LARGE_VALUE_BYTES, MAX_INSTANCE_METADATA_BYTES,
    SearchResource, ServiceConfig, StudiesService,
};
use dicomweb_storage::open_store;
use serde_json::Value;

use common::{fresh_catalogue, store_file};

const STUDY: &str = "1.2.826.0.1.3680043.8.498.1001";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.1001.1";

/// A secondary capture instance of [`STUDY`] with `extra` elements, as Part 10 bytes (zero preamble, implicit VR
/// little endian, whose 32-bit lengths allow a LO of any size).
fn instance(sop: &str, extra: Vec<DataElement<InMemDicomObject>>) -> Bytes {
    let mut obj = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(uids::SECONDARY_CAPTURE_IMAGE_STORAGE),
        ),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(sop)),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(STUDY),
        ),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(SERIES),
        ),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("OT")),
        DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("LARGE-1")),
        DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("Doe^Jane")),
    ]);
    for element in extra {
        obj.put(element);
    }
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::IMPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
                .media_storage_sop_instance_uid(sop),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    Bytes::from(bytes)
}

fn text(tag: Tag, vr: VR, len: usize, fill: &str) -> DataElement<InMemDicomObject> {
    let value: String = fill.chars().cycle().take(len).collect();
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// A 1 MiB UT, a 100 KiB StudyDescription (searchable) starting with `HUGE`, and a short LT.
fn with_huge_values(sop: &str) -> Bytes {
    instance(
        sop,
        vec![
            text(tags::TEXT_VALUE, VR::UT, 1024 * 1024, "lorem ipsum "),
            text(tags::STUDY_DESCRIPTION, VR::LO, 100 * 1024, "HUGE"),
            text(
                tags::ADDITIONAL_PATIENT_HISTORY,
                VR::LT,
                40,
                "short history ",
            ),
        ],
    )
}

fn service() -> StudiesService {
    let dir = tempfile::tempdir().unwrap().keep();
    StudiesService::new(
        open_store("memory://").unwrap(),
        fresh_catalogue(),
        Index::open_in_ram().unwrap(),
        ServiceConfig::new(dir.join("spool")),
    )
}

async fn metadata_of(service: &StudiesService, sop: &str) -> (Vec<u8>, Value) {
    let array = service
        .metadata(
            &Scope::Instance(STUDY.into(), SERIES.into(), sop.into()),
            "http://h",
        )
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    // The one object of the array, as stored.
    let metadata = array[1..array.len() - 1].to_vec();
    let json = serde_json::from_slice(&metadata).unwrap();
    (metadata, json)
}

async fn search(service: &StudiesService, params: &[(&str, &str)]) -> usize {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    service
        .search(&SearchResource::Studies, &params, "http://h")
        .await
        .expect("a valid search")
        .len()
}

#[tokio::test]
async fn values_over_the_limit_are_bulk_data_uris_in_the_metadata_and_small_ones_kept() {
    let service = service();
    store_file(&service, with_huge_values("1.2.3.1")).await;

    let (bytes, json) = metadata_of(&service, "1.2.3.1").await;
    let uri = |tag: &str| {
        format!("http://h/studies/{STUDY}/series/{SERIES}/instances/1.2.3.1/bulkdata/{tag}")
    };
    assert_eq!(
        json["0040A160"],
        serde_json::json!({"vr": "UT", "BulkDataURI": uri("0040A160")}),
        "the 1 MiB TextValue"
    );
    assert_eq!(
        json["00081030"],
        serde_json::json!({"vr": "LO", "BulkDataURI": uri("00081030")}),
        "the 100 KiB StudyDescription"
    );
    assert_eq!(
        json["001021B0"],
        serde_json::json!({"vr": "LT", "Value": ["short history short history short histor"]})
    );
    assert_eq!(json["00100010"]["Value"][0]["Alphabetic"], "Doe^Jane");
    assert!(
        bytes.len() < LARGE_VALUE_BYTES,
        "metadata of {} bytes",
        bytes.len()
    );

    // The search results and the change feed show the same bounded document.
    let changes = service
        .changes(&ChangeQuery {
            limit: 10,
            include_metadata: true,
            ..ChangeQuery::default()
        })
        .await
        .unwrap();
    let stored = changes[0].metadata.as_deref().unwrap();
    assert_eq!(
        dicomweb_service::served_metadata(stored, "http://h", STUDY, SERIES, "1.2.3.1"),
        &bytes[..]
    );
}

#[tokio::test]
async fn a_value_too_large_to_index_is_not_found_by_its_content_nor_by_a_prefix() {
    let service = service();
    store_file(&service, with_huge_values("1.2.3.1")).await;
    // Before the index commits (the overlay matches in memory) and after.
    for committed in [false, true] {
        if committed {
            service.sync_search_index().await.unwrap();
        }
        assert_eq!(
            search(&service, &[("StudyDescription", "HUGE*")]).await,
            0,
            "committed: {committed}"
        );
        // Its other attributes are indexed as usual.
        assert_eq!(search(&service, &[("PatientID", "LARGE-1")]).await, 1);
    }
}

#[tokio::test]
async fn the_stored_file_keeps_the_large_values_byte_for_byte() {
    let service = service();
    let file = with_huge_values("1.2.3.1");
    store_file(&service, file.clone()).await;
    let records = service
        .instances_in(&Scope::Instance(
            STUDY.into(),
            SERIES.into(),
            "1.2.3.1".into(),
        ))
        .await
        .unwrap();
    let content = service.open_instance(records[0].clone()).await.unwrap();
    let stored = dicomweb_storage::read_to_bytes(content.body).await.unwrap();
    assert!(
        stored == file,
        "the retrieved file differs from the stored one"
    );
}

/// `count` items of (0040,A730) ContentSequence, each with a TextValue of `len` bytes.
fn many_texts(count: usize, len: usize) -> DataElement<InMemDicomObject> {
    let items: Vec<InMemDicomObject> = (0..count)
        .map(|i| {
            InMemDicomObject::from_element_iter([text(
                tags::TEXT_VALUE,
                VR::UT,
                len,
                &format!("item {i} "),
            )])
        })
        .collect();
    DataElement::new(tags::CONTENT_SEQUENCE, VR::SQ, DataSetSequence::from(items))
}

#[tokio::test]
async fn metadata_over_the_cap_leaves_out_its_largest_values_until_it_fits() {
    let service = service();
    // 100 values of 60 KiB, each under the limit, 6 MiB in all.
    let file = instance("1.2.3.2", vec![many_texts(100, 60 * 1024)]);
    store_file(&service, file).await;

    let (bytes, json) = metadata_of(&service, "1.2.3.2").await;
    assert!(
        bytes.len() <= MAX_INSTANCE_METADATA_BYTES,
        "metadata of {} bytes",
        bytes.len()
    );
    let items = json["0040A730"]["Value"].as_array().unwrap();
    assert_eq!(items.len(), 100, "the structure is kept");
    assert!(
        items
            .iter()
            .all(|item| item["0040A160"].get("Value").is_none()
                && item["0040A160"]["BulkDataURI"].is_string())
    );
    assert_eq!(json["00100020"]["Value"][0], "LARGE-1");
    assert_eq!(search(&service, &[("PatientID", "LARGE-1")]).await, 1);
}

#[tokio::test]
async fn an_instance_whose_metadata_cannot_fit_is_refused_naming_the_limit() {
    let service = service();
    // 6000 values of 1000 bytes: none is over the lowest limit a value may be held to, 6 MB in all.
    let file = instance("1.2.3.3", vec![many_texts(6000, 1000)]);
    let body = futures::stream::iter([Ok::<_, std::io::Error>(file)]);
    match service.store_instance(None, body).await.unwrap() {
        InstanceOutcome::Failed {
            reason,
            message,
            sop_instance_uid,
            ..
        } => {
            assert_eq!(reason, FailureReason::OutOfResources);
            assert_eq!(reason.code(), 0xA700);
            assert!(
                message.contains(&MAX_INSTANCE_METADATA_BYTES.to_string()),
                "{message}"
            );
            assert!(message.contains("1.2.3.3"), "{message}");
            let _ = sop_instance_uid;
        }
        stored => panic!("stored: {stored:?}"),
    }
    assert!(
        service
            .instances_in(&Scope::Study(STUDY.into()))
            .await
            .map_or(true, |records| records.is_empty()),
        "nothing of it is catalogued"
    );
}
