//! The simulator's output in the Backblaze CSV format (with the schema's non-SMART
//! features as extra columns), written crash-safely one file per day.

use shardlet_predictor_api::schema::{
    index, FeatureValues, FEATURES, FEATURE_COUNT, SMART_ATTRIBUTES,
};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::node::{is_smart_feature, SimulatedNode};

/// The non-SMART schema features, written as extra columns after the SMART ones.
fn extra_features() -> impl Iterator<Item = usize> {
    (0..FEATURE_COUNT).filter(|feature| !is_smart_feature(*feature))
}

pub(super) fn header() -> String {
    let mut header = String::from("date,serial_number,model,capacity_bytes,failure");
    for (attribute, _) in SMART_ATTRIBUTES {
        header.push_str(&format!(
            ",smart_{attribute}_normalized,smart_{attribute}_raw"
        ));
    }
    for feature in extra_features() {
        header.push(',');
        header.push_str(FEATURES[feature].csv_column);
    }
    header
}

/// Backblaze's normalised value: 100 is healthy, lower is worse. Nothing reads it.
fn normalized(feature: usize, raw: f32) -> f32 {
    match feature {
        index::SMART_194 => raw,
        index::SMART_9 => (100.0 - raw / 1000.0).max(1.0).round(),
        _ => (100.0 - raw.min(99.0)).round(),
    }
}

pub(super) fn write_row(
    out: &mut impl Write,
    date: &str,
    node: &SimulatedNode,
    values: &FeatureValues,
    failing: bool,
) -> std::io::Result<()> {
    write!(
        out,
        "{date},{},{},{},{}",
        node.serial,
        node.model.name,
        node.model.capacity_bytes,
        u8::from(failing)
    )?;
    for (_, feature) in SMART_ATTRIBUTES {
        let raw = values[feature];
        if raw.is_nan() {
            write!(out, ",,")?;
        } else {
            write!(out, ",{},{raw}", normalized(feature, raw))?;
        }
    }
    for feature in extra_features() {
        let value = values[feature];
        if value.is_nan() {
            write!(out, ",")?;
        } else if value.fract() == 0.0 {
            write!(out, ",{value}")?;
        } else {
            write!(out, ",{value:.4}")?;
        }
    }
    writeln!(out)
}

/// Writes `path` via a temporary file: after a crash either the complete file exists
/// or only a `.tmp` file does, which the importer ignores (it reads `*.csv` only).
/// The data is regenerable from the seed, so no directory fsync is needed; the file's
/// own fsync makes a completed run complete on disk.
pub(super) fn write_atomically(
    path: &Path,
    contents: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut writer = BufWriter::with_capacity(1 << 20, File::create(&temporary)?);
    contents(&mut writer)?;
    let file = writer.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
