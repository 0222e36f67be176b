//! Where things live in blob storage. Keys are built only from validated UIDs (see [`crate::check_uid`]), so no
//! client input can produce a key outside these prefixes.
//!
//! Each stored version of an instance has a file of its own,
//! `studies/{study}/series/{series}/instances/{sop}_{version:016x}.dcm`: `_` never occurs in a UID, so the name
//! parses back unambiguously, and removing the file of a deleted version never touches the file of a version
//! stored after it. Files of the first layout, `.../instances/{sop}.dcm` (no version), are still read.

/// Prefix under which every instance file is stored (what a rebuild of the catalogue lists).
pub const INSTANCES_PREFIX: &str = "studies/";

/// Storage key of one stored version of an instance's Part 10 file.
pub fn instance_key(study: &str, series: &str, sop: &str, version: u64) -> String {
    format!("{INSTANCES_PREFIX}{study}/series/{series}/instances/{sop}_{version:016x}.dcm")
}

/// The UIDs and version an instance key names (version `None` for the first layout), or `None` for a key that
/// is not an instance file.
pub fn parse_instance_key(key: &str) -> Option<InstanceKey<'_>> {
    let rest = key.strip_prefix(INSTANCES_PREFIX)?;
    let mut segments = rest.split('/');
    let (study, series_word, series, instances_word, file) = (
        segments.next()?,
        segments.next()?,
        segments.next()?,
        segments.next()?,
        segments.next()?,
    );
    if segments.next().is_some() || series_word != "series" || instances_word != "instances" {
        return None;
    }
    let stem = file.strip_suffix(".dcm")?;
    let (sop, version) = match stem.rsplit_once('_') {
        Some((sop, version)) => (sop, Some(u64::from_str_radix(version, 16).ok()?)),
        None => (stem, None),
    };
    Some(InstanceKey {
        study,
        series,
        sop,
        version,
    })
}

/// What an instance key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceKey<'a> {
    /// StudyInstanceUID.
    pub study: &'a str,
    /// SeriesInstanceUID.
    pub series: &'a str,
    /// SOPInstanceUID.
    pub sop: &'a str,
    /// The catalogue version the file holds; `None` for files of the first layout.
    pub version: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_keys_nest_by_study_and_series_and_name_the_version() {
        let key = instance_key("1.2", "3.4", "5.6", 0x1f);
        assert_eq!(
            key,
            "studies/1.2/series/3.4/instances/5.6_000000000000001f.dcm"
        );
        assert_eq!(
            parse_instance_key(&key),
            Some(InstanceKey {
                study: "1.2",
                series: "3.4",
                sop: "5.6",
                version: Some(0x1f)
            })
        );
    }

    #[test]
    fn keys_of_the_first_layout_parse_without_a_version() {
        let parsed = parse_instance_key("studies/1.2/series/3.4/instances/5.6.dcm").unwrap();
        assert_eq!((parsed.sop, parsed.version), ("5.6", None));
    }

    #[test]
    fn other_keys_are_not_instance_files() {
        for key in [
            "studies/1.2/series/3.4/instances/5.6.txt",
            "studies/1.2/series/3.4/5.6.dcm",
            "studies/1.2/series/3.4/instances/5.6_zz.dcm",
            "other/1.2/series/3.4/instances/5.6.dcm",
        ] {
            assert_eq!(parse_instance_key(key), None, "{key}");
        }
    }
}
