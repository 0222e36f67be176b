//! `open_store` with a relative path resolves it against the working directory. Alone in its own test
//! binary because it changes the process's working directory.

use dicomweb_storage::{body_from_bytes, open_store};

#[tokio::test]
async fn a_relative_path_is_a_directory_under_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let store = open_store("./data/blobs").unwrap();
    store
        .create("studies/1/blob", body_from_bytes("on disk"))
        .await
        .unwrap();
    let written = std::fs::read_to_string(dir.path().join("data/blobs/studies/1/blob")).unwrap();
    assert_eq!(written, "on disk");
}
