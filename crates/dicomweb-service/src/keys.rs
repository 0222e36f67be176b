//! Where things live in blob storage. Keys are built only from validated UIDs (see [`crate::check_uid`]), so no
//! client input can produce a key outside these prefixes.

/// Prefix under which every instance file is stored (what a rebuild of the catalogue lists).
pub const INSTANCES_PREFIX: &str = "studies/";

/// Storage key of an instance's Part 10 file.
pub fn instance_key(study: &str, series: &str, sop: &str) -> String {
    format!("{INSTANCES_PREFIX}{study}/series/{series}/instances/{sop}.dcm")
}

#[cfg(test)]
mod tests {
    #[test]
    fn instance_keys_nest_by_study_and_series() {
        assert_eq!(
            super::instance_key("1.2", "3.4", "5.6"),
            "studies/1.2/series/3.4/instances/5.6.dcm"
        );
    }
}
