//! Frames are read by byte ranges recorded at store time; deletes remove the stored files.

mod common;
mod counting_store;

use std::sync::Arc;

use counting_store::CountingStore;
use dicomweb_index::{Index, Scope};
use dicomweb_service::{
    FRAMES_READ_AT_ONCE_MAX_BYTES, FrameBodies, ServiceConfig, ServiceError, StudiesService,
    TransferSyntaxRequest,
};
use dicomweb_storage::{BlobStore, open_store};
use futures::{StreamExt, TryStreamExt};

use common::{fresh_catalogue, test_file as sample};

async fn stored(service: &StudiesService, name: &str) -> Scope {
    let (study, series, sop) = common::store_file(service, sample(name)).await;
    Scope::Instance(study, series, sop)
}

/// A service whose storage counts the bytes read through it.
fn counted_service() -> (tempfile::TempDir, Arc<CountingStore>, StudiesService) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CountingStore::new(open_store("memory://").unwrap()));
    let service = StudiesService::new(
        store.clone(),
        fresh_catalogue(),
        Index::open_in_ram().unwrap(),
        ServiceConfig::new(dir.path().into()),
    );
    (dir, store, service)
}

#[tokio::test]
async fn the_last_frame_is_read_without_reading_the_file() {
    let (_dir, store, service) = counted_service();
    // rtdose: 15 native frames of 10x10 32-bit values (400 bytes each).
    let scope = stored(&service, "pydicom/rtdose.dcm").await;
    store.take_bytes_read();

    let frames = service
        .frames(&scope, &[15], &[TransferSyntaxRequest::default().into()])
        .await
        .unwrap();
    let FrameBodies::Read(frames) = frames.frames else {
        panic!("a small frame is read before the answer starts")
    };
    assert_eq!(frames[0].len(), 400);
    assert_eq!(
        store.take_bytes_read(),
        400,
        "exactly the frame's bytes are read"
    );

    let file_len = sample("pydicom/rtdose.dcm").len();
    let expected = &sample("pydicom/rtdose.dcm")[file_len - 400..];
    assert_eq!(
        &frames[0][..],
        expected,
        "the last frame is the last 400 bytes of this file"
    );
}

#[tokio::test]
async fn encapsulated_frames_are_their_fragments() {
    let (_dir, store, service) = counted_service();
    let scope = stored(&service, "pydicom/SC_rgb_rle_2frame.dcm").await;
    store.take_bytes_read();
    let frames = service
        .frames(&scope, &[2, 1], &[TransferSyntaxRequest::AsStored.into()])
        .await
        .unwrap();
    assert_eq!(frames.transfer_syntax_uid, "1.2.840.10008.1.2.5");
    assert_eq!(frames.media_type, "image/dicom-rle");
    let read = store.take_bytes_read();
    let frames = frames.into_frames().await.unwrap();
    assert_eq!(read, (frames[0].len() + frames[1].len()) as u64);
    assert!(read < sample("pydicom/SC_rgb_rle_2frame.dcm").len() as u64);
    // An uncompressed frame of a compressed instance is decoded from that frame's fragments alone.
    store.take_bytes_read();
    let decoded = service
        .frames(&scope, &[1], &[TransferSyntaxRequest::default().into()])
        .await
        .unwrap();
    assert_eq!(decoded.transfer_syntax_uid, "1.2.840.10008.1.2.1");
    let read = store.take_bytes_read();
    let decoded = decoded.into_frames().await.unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].len(), 100 * 100 * 3, "100x100 RGB, 8 bits");
    assert_eq!(
        read,
        frames[1].len() as u64,
        "frame 1's fragment, nothing else"
    );
    // Encoded in another compressed syntax (decoded, then encoded): JPEG-LS lossless that decodes to the same
    // pixels as the RLE original.
    let jpeg_ls = service
        .frames(
            &scope,
            &[1],
            &[TransferSyntaxRequest::Uid("1.2.840.10008.1.2.4.80".into()).into()],
        )
        .await
        .unwrap();
    assert_eq!(jpeg_ls.transfer_syntax_uid, "1.2.840.10008.1.2.4.80");
    assert_eq!(jpeg_ls.media_type, "image/jls");
    let jpeg_ls = jpeg_ls.into_frames().await.unwrap();
    let geometry = dicomweb_pixel::FrameGeometry {
        rows: 100,
        columns: 100,
        samples_per_pixel: 3,
        bits_allocated: 8,
        bits_stored: 8,
        high_bit: 7,
        pixel_representation: 0,
        photometric_interpretation: "RGB".into(),
        planar_configuration: 0,
    };
    let native = service
        .frames(&scope, &[1], &[TransferSyntaxRequest::default().into()])
        .await
        .unwrap()
        .into_frames()
        .await
        .unwrap();
    assert_eq!(
        dicomweb_pixel::decode_frame(
            "1.2.840.10008.1.2.4.80",
            &geometry,
            vec![jpeg_ls[0].to_vec()]
        )
        .unwrap(),
        native[0].to_vec()
    );
    // A syntax nothing here encodes to is refused, saying what the frames are available in.
    let refused = service
        .frames(
            &scope,
            &[1],
            &[TransferSyntaxRequest::Uid("1.2.840.10008.1.2.4.202".into()).into()],
        )
        .await;
    let Err(dicomweb_service::ServiceError::NotAcceptable(message)) = refused else {
        panic!("{refused:?}");
    };
    assert!(
        message.contains("1.2.840.10008.1.2.4.202: no encoder")
            && message.contains("1.2.840.10008.1.2.4.90"),
        "{message}"
    );
    // Of several forms, the first one that can be produced wins.
    let chosen = service
        .frames(
            &scope,
            &[1],
            &[
                TransferSyntaxRequest::Uid("1.2.840.10008.1.2.4.202".into()).into(),
                TransferSyntaxRequest::AsStored.into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(chosen.transfer_syntax_uid, "1.2.840.10008.1.2.5");
}

/// A native 8-bit multi-frame instance in Explicit VR Little Endian whose frame n (from 1) is `frame_len`
/// bytes (a multiple of 1024: rows of 1024 pixels) of value n; its SOP Instance UID is `sop`.
fn multi_frame(sop: &str, frames: u32, frame_len: u32) -> bytes::Bytes {
    fn element(out: &mut Vec<u8>, group: u16, element: u16, vr: &[u8; 2], value: &[u8]) {
        out.extend(group.to_le_bytes());
        out.extend(element.to_le_bytes());
        out.extend(vr);
        if vr == b"OB" {
            out.extend([0, 0]);
            out.extend((value.len() as u32).to_le_bytes());
        } else {
            out.extend((value.len() as u16).to_le_bytes());
        }
        out.extend(value);
    }
    fn text(value: &str, pad: u8) -> Vec<u8> {
        let mut bytes = value.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(pad);
        }
        bytes
    }
    const SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";
    const TS: &str = "1.2.840.10008.1.2.1";
    let mut meta = Vec::new();
    element(&mut meta, 0x0002, 0x0001, b"OB", &[0, 1]);
    element(&mut meta, 0x0002, 0x0002, b"UI", &text(SOP_CLASS, 0));
    element(&mut meta, 0x0002, 0x0003, b"UI", &text(sop, 0));
    element(&mut meta, 0x0002, 0x0010, b"UI", &text(TS, 0));
    let mut out = vec![0; 128];
    out.extend(b"DICM");
    element(
        &mut out,
        0x0002,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    );
    out.extend(meta);
    element(&mut out, 0x0008, 0x0016, b"UI", &text(SOP_CLASS, 0));
    element(&mut out, 0x0008, 0x0018, b"UI", &text(sop, 0));
    element(&mut out, 0x0010, 0x0020, b"LO", &text("FRAMES", b' '));
    element(&mut out, 0x0020, 0x000D, b"UI", &text("1.2.3.4", 0));
    element(&mut out, 0x0020, 0x000E, b"UI", &text("1.2.3.4.1", 0));
    element(&mut out, 0x0028, 0x0002, b"US", &1u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0004, b"CS", &text("MONOCHROME2", b' '));
    element(
        &mut out,
        0x0028,
        0x0008,
        b"IS",
        &text(&frames.to_string(), b' '),
    );
    assert_eq!(frame_len % 1024, 0);
    element(
        &mut out,
        0x0028,
        0x0010,
        b"US",
        &((frame_len / 1024) as u16).to_le_bytes(),
    );
    element(&mut out, 0x0028, 0x0011, b"US", &1024u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0100, b"US", &8u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0101, b"US", &8u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0102, b"US", &7u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0103, b"US", &0u16.to_le_bytes());
    let pixels: Vec<u8> = (1..=frames)
        .flat_map(|n| std::iter::repeat_n(n as u8, frame_len as usize))
        .collect();
    element(&mut out, 0x7FE0, 0x0010, b"OB", &pixels);
    bytes::Bytes::from(out)
}

#[tokio::test]
async fn a_frame_asked_twice_is_refused_naming_the_limit() {
    let (_dir, store, service) = counted_service();
    let (study, series, sop) =
        common::store_file(&service, multi_frame("1.2.3.4.1.1", 3, 60 * 1024)).await;
    let scope = Scope::Instance(study, series, sop);
    store.take_bytes_read();
    let refused = service
        .frames(
            &scope,
            &[1, 2, 1, 1],
            &[TransferSyntaxRequest::AsStored.into()],
        )
        .await;
    let Err(ServiceError::InvalidInput(message)) = refused else {
        panic!("a repeated frame is the client's error, got {refused:?}")
    };
    assert!(message.contains("asks for 4 frames"), "{message}");
    assert!(message.contains("frame 1 more than once"), "{message}");
    assert!(message.contains("at most the 3 frame(s)"), "{message}");
    assert_eq!(
        store.take_bytes_read(),
        0,
        "nothing is read for a refused list"
    );
    // Out of range stays a 404, whatever else is wrong with the list.
    let missing = service
        .frames(&scope, &[4, 4], &[TransferSyntaxRequest::AsStored.into()])
        .await;
    assert!(
        matches!(missing, Err(ServiceError::NotFound(_))),
        "{missing:?}"
    );
}

#[tokio::test]
async fn large_frame_responses_are_read_as_they_are_sent() {
    // 2 MiB frames (each read in 1 MiB pieces) and 100 KiB frames (read several at a time): both responses
    // are larger than what is read before answering.
    for (frames, frame_len) in [(4u32, 2 * 1024 * 1024u32), (40, 100 * 1024)] {
        let (_dir, store, service) = counted_service();
        let sop = format!("1.2.3.4.1.{frames}");
        let (study, series, sop) =
            common::store_file(&service, multi_frame(&sop, frames, frame_len)).await;
        let scope = Scope::Instance(study, series, sop);
        let asked: Vec<u32> = (1..=frames).rev().collect();
        store.take_bytes_read();
        let data = service
            .frames(&scope, &asked, &[TransferSyntaxRequest::AsStored.into()])
            .await
            .unwrap();
        let FrameBodies::Streamed(mut stream) = data.frames else {
            panic!("{} bytes of frames must stream", frames * frame_len)
        };
        assert_eq!(
            store.take_bytes_read(),
            0,
            "nothing is read before the body is sent"
        );
        let total = u64::from(frames) * u64::from(frame_len);
        assert!(total > FRAMES_READ_AT_ONCE_MAX_BYTES);
        let (mut sent, mut most_read_ahead) = (0u64, 0u64);
        for &n in &asked {
            let frame = stream.next().await.unwrap().unwrap();
            assert_eq!(frame.len, u64::from(frame_len));
            let mut body = frame.body;
            let mut frame_sent = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.unwrap();
                assert!(
                    chunk.iter().all(|&b| b == n as u8),
                    "frame {n} holds its own bytes"
                );
                frame_sent += chunk.len() as u64;
                sent += chunk.len() as u64;
                // Bytes read from storage but not yet handed on: bounded, however large the response.
                let read = store.bytes_read.load(std::sync::atomic::Ordering::SeqCst);
                most_read_ahead = most_read_ahead.max(read - sent);
            }
            assert_eq!(frame_sent, u64::from(frame_len));
        }
        assert!(stream.next().await.is_none());
        assert!(
            most_read_ahead <= 3 * 1024 * 1024,
            "read {most_read_ahead} bytes ahead of the frame being sent"
        );
    }
}

#[tokio::test]
async fn delete_removes_the_stored_files() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open_store("memory://").unwrap();
    let service = StudiesService::new(
        blobs.clone(),
        fresh_catalogue(),
        Index::open_in_ram().unwrap(),
        ServiceConfig::new(dir.path().into()),
    );
    for name in ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"] {
        stored(&service, name).await;
    }
    let files = |blobs: Arc<dyn BlobStore>| async move {
        blobs
            .list("studies/")
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len()
    };
    assert_eq!(files(blobs.clone()).await, 3);
    let Scope::Instance(study, series, _) = stored(&service, "pydicom/CT_small.dcm").await else {
        unreachable!()
    };
    assert_eq!(
        service.delete(Scope::Series(study, series)).await.unwrap(),
        1
    );
    assert_eq!(files(blobs.clone()).await, 3);
    let study = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420".to_string();
    assert_eq!(
        service.delete(Scope::Study(study.clone())).await.unwrap(),
        3
    );
    assert_eq!(files(blobs.clone()).await, 0);
    assert!(matches!(
        service.delete(Scope::Study(study)).await,
        Err(dicomweb_service::ServiceError::NotFound(_))
    ));
}
