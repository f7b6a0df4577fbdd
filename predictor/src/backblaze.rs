//! Import of the Backblaze drive-stats CSV format, streaming: one record in memory at a
//! time, whatever the file size.
//!
//! Columns are found by header name, so files with fewer or more SMART attributes (the
//! format grew over the years) and our simulator's extra columns all import. Required:
//! `date`, `serial_number`, `failure`. Empty cells are missing values. Anything else
//! malformed (bad date, non-numeric or out-of-range value, wrong field count) stops the
//! import with an error naming the file and the line.

use shardlet_predictor_api::schema::{
    check_value, HealthRow, ALL_MISSING, FEATURES, FEATURE_COUNT,
};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::dataset::{Fleet, FleetBuilder};
use crate::dates::parse_day;

/// Why an import failed; always names the file, and the line when one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}:{line}: {reason}")]
    Malformed {
        file: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{directory}: no *.csv files")]
    NoFiles { directory: PathBuf },
}

/// Longest serial or model we accept: the fields are identifiers, not free text.
const IDENTIFIER_BYTES_MAX: usize = 256;

struct Columns {
    date: usize,
    serial: usize,
    model: Option<usize>,
    capacity: Option<usize>,
    failure: usize,
    features: [Option<usize>; FEATURE_COUNT],
    field_count: usize,
}

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Self, String> {
        let find = |name: &str| header.iter().position(|column| column.trim() == name);
        let require = |name: &str| find(name).ok_or_else(|| format!("missing column {name:?}"));
        let mut features = [None; FEATURE_COUNT];
        for (slot, spec) in features.iter_mut().zip(FEATURES.iter()) {
            *slot = find(spec.csv_column);
        }
        Ok(Self {
            date: require("date")?,
            serial: require("serial_number")?,
            model: find("model"),
            capacity: find("capacity_bytes"),
            failure: require("failure")?,
            features,
            field_count: header.len(),
        })
    }

    fn parse(&self, record: &csv::StringRecord) -> Result<HealthRow, String> {
        if record.len() != self.field_count {
            return Err(format!(
                "wrong field count: {} fields, header has {}",
                record.len(),
                self.field_count
            ));
        }
        let field = |index: usize| record.get(index).unwrap_or("").trim();
        let day = parse_day(field(self.date))?;
        let serial = field(self.serial);
        if serial.is_empty() || serial.len() > IDENTIFIER_BYTES_MAX {
            return Err(format!(
                "serial_number must be 1 to {IDENTIFIER_BYTES_MAX} bytes"
            ));
        }
        let model = self.model.map(field).unwrap_or("");
        if model.len() > IDENTIFIER_BYTES_MAX {
            return Err(format!("model longer than {IDENTIFIER_BYTES_MAX} bytes"));
        }
        let failure = match field(self.failure) {
            "0" => false,
            "1" => true,
            other => return Err(format!("failure must be 0 or 1, got {other:?}")),
        };
        let capacity_bytes = match self.capacity.map(field) {
            None | Some("") => None,
            Some(text) => match text.parse::<i64>() {
                // Backblaze writes -1 for drives whose capacity could not be read.
                Ok(value) if value < 0 => None,
                Ok(value) => Some(value as u64),
                Err(_) => return Err(format!("capacity_bytes {text:?} is not an integer")),
            },
        };
        let mut values = ALL_MISSING;
        for (feature_index, column) in self.features.iter().enumerate() {
            let Some(column) = column else { continue };
            let text = field(*column);
            if text.is_empty() {
                continue;
            }
            let value: f32 = text.parse().map_err(|_| {
                format!(
                    "column {}: {text:?} is not a number",
                    FEATURES[feature_index].csv_column
                )
            })?;
            if value.is_nan() {
                return Err(format!(
                    "column {}: NaN is not a value (leave the cell empty)",
                    FEATURES[feature_index].csv_column
                ));
            }
            check_value(feature_index, value).map_err(|reason| {
                format!("column {}: {reason}", FEATURES[feature_index].csv_column)
            })?;
            values[feature_index] = value;
        }
        Ok(HealthRow {
            serial: serial.to_string(),
            model: model.to_string(),
            day,
            capacity_bytes,
            failure,
            values,
        })
    }
}

/// Streams the rows of one CSV file into `sink`. Returns the number of rows read.
pub fn import_file(path: &Path, mut sink: impl FnMut(HealthRow)) -> Result<u64, ImportError> {
    let file = File::open(path).map_err(|source| ImportError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    import_reader(path, file, &mut sink)
}

/// Streams rows from any reader; `name` is used in error messages.
pub fn import_reader(
    name: &Path,
    reader: impl Read,
    sink: &mut impl FnMut(HealthRow),
) -> Result<u64, ImportError> {
    let malformed = |line: u64, reason: String| ImportError::Malformed {
        file: name.to_path_buf(),
        line,
        reason,
    };
    let mut csv_reader = csv::ReaderBuilder::new()
        .has_headers(true)
        // We check the field count ourselves to name the line in our own words.
        .flexible(true)
        .from_reader(reader);
    let header = csv_reader
        .headers()
        .map_err(|error| malformed(1, error.to_string()))?
        .clone();
    let columns = Columns::from_header(&header).map_err(|reason| malformed(1, reason))?;
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    loop {
        let more = csv_reader.read_record(&mut record).map_err(|error| {
            let line = error.position().map_or(0, csv::Position::line);
            malformed(line, error.to_string())
        })?;
        if !more {
            return Ok(rows);
        }
        let line = record.position().map_or(0, csv::Position::line);
        // Blank trailing lines are common in hand-edited files; they carry nothing.
        if record.len() == 1 && record.get(0).is_some_and(|field| field.trim().is_empty()) {
            continue;
        }
        let row = columns
            .parse(&record)
            .map_err(|reason| malformed(line, reason))?;
        sink(row);
        rows += 1;
    }
}

/// The `*.csv` files of a directory (or the file itself), sorted by name, skipping the
/// simulator's side files.
pub fn csv_files(path: &Path) -> Result<Vec<PathBuf>, ImportError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let io_error = |source| ImportError::Io {
        file: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_error)? {
        let entry_path = entry.map_err(io_error)?.path();
        let is_csv = entry_path
            .extension()
            .is_some_and(|extension| extension == "csv");
        let is_side_file = entry_path
            .file_name()
            .is_some_and(|name| name == crate::simulator::FAILURE_MODES_FILE);
        if is_csv && !is_side_file && entry_path.is_file() {
            files.push(entry_path);
        }
    }
    if files.is_empty() {
        return Err(ImportError::NoFiles {
            directory: path.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}

/// Imports a file or a directory of daily CSVs into a fleet. `on_file_done` is called
/// after each file (for progress bars) with the number of rows read from it.
pub fn import_fleet(
    path: &Path,
    mut on_file_done: impl FnMut(&Path, u64),
) -> Result<Fleet, ImportError> {
    let mut builder = FleetBuilder::default();
    for file in csv_files(path)? {
        let rows = import_file(&file, |row| builder.add(row))?;
        on_file_done(&file, rows);
    }
    Ok(builder.build())
}
