//! The Backblaze importer on good and bad CSV: every kind of bad row is an error that
//! names the file and the line.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use shardlet_predictor::backblaze::{import_fleet, ImportError};
use shardlet_predictor::dates::parse_day;
use shardlet_predictor_api::schema::index;

const HEADER: &str = "date,serial_number,model,capacity_bytes,failure,smart_5_normalized,smart_5_raw,smart_187_raw,smart_194_raw";

fn write(directory: &Path, name: &str, text: &str) {
    std::fs::write(directory.join(name), text).unwrap();
}

fn import_text(text: &str) -> Result<shardlet_predictor::dataset::Fleet, ImportError> {
    let directory = tempfile::tempdir().unwrap();
    write(directory.path(), "day.csv", text);
    import_fleet(directory.path(), |_, _| {})
}

#[test]
fn good_csv_with_missing_columns_and_empty_cells_imports() {
    let fleet = import_text(&format!(
        "{HEADER}\n\
         2024-01-01,A1,M,4000,0,100,0,,35\n\
         2024-01-02,A1,M,4000,0,100,3,1,36\n\
         2024-01-04,A1,M,4000,1,99,7,2,\n\
         2024-01-01,B2,M,-1,0,,,,\n\
         \n"
    ))
    .unwrap();
    assert_eq!(fleet.nodes.len(), 2);
    let a1 = &fleet.nodes[0];
    assert_eq!(a1.serial, "A1");
    assert_eq!(a1.first_day, parse_day("2024-01-01").unwrap());
    assert_eq!(a1.failure_day, Some(parse_day("2024-01-04").unwrap()));
    // Four days densely, with the unreported 3rd all missing.
    assert_eq!(a1.values.len(), 4);
    assert!(!a1.reported[2] && a1.values[2].iter().all(|value| value.is_nan()));
    assert_eq!(a1.values[1][index::SMART_5], 3.0);
    assert_eq!(a1.values[1][index::SMART_187], 1.0);
    assert!(a1.values[0][index::SMART_187].is_nan());
    assert!(a1.values[3][index::SMART_194].is_nan());
    // Columns absent from the file are missing, not zero.
    assert!(a1.values[0][index::CPU_UTILIZATION].is_nan());
    assert_eq!(fleet.nodes[1].failure_day, None);
}

fn expect_error(text: &str, line: u64, reason_part: &str) {
    let error = import_text(text).unwrap_err().to_string();
    assert!(error.contains(&format!("day.csv:{line}:")), "{error}");
    assert!(
        error.contains(reason_part),
        "{error} should mention {reason_part:?}"
    );
}

#[test]
fn bad_date_names_file_and_line() {
    expect_error(
        &format!("{HEADER}\n2024-01-01,A,M,1,0,100,0,0,30\n2024-13-01,A,M,1,0,100,0,0,30\n"),
        3,
        "bad date",
    );
}

#[test]
fn non_numeric_value_names_file_and_line() {
    expect_error(
        &format!("{HEADER}\n2024-01-01,A,M,1,0,100,lots,0,30\n"),
        2,
        "smart_5_raw",
    );
}

#[test]
fn wrong_field_count_names_file_and_line() {
    expect_error(
        &format!("{HEADER}\n2024-01-01,A,M,1,0,100,0,0,30\n2024-01-02,A,M,1,0,100\n"),
        3,
        "wrong field count",
    );
}

#[test]
fn bad_failure_flag_names_file_and_line() {
    expect_error(
        &format!("{HEADER}\n2024-01-01,A,M,1,yes,100,0,0,30\n"),
        2,
        "failure must be 0 or 1",
    );
}

#[test]
fn out_of_range_and_nan_values_name_file_and_line() {
    expect_error(
        &format!("{HEADER}\n2024-01-01,A,M,1,0,100,-4,0,30\n"),
        2,
        "outside",
    );
    expect_error(
        &format!("{HEADER}\n2024-01-01,A,M,1,0,100,NaN,0,30\n"),
        2,
        "NaN",
    );
    expect_error(
        &format!("{HEADER}\n2024-01-01,A,M,lots,0,100,0,0,30\n"),
        2,
        "capacity_bytes",
    );
}

#[test]
fn missing_required_column_and_empty_serial_are_errors() {
    expect_error("date,model,failure\n2024-01-01,M,0\n", 1, "serial_number");
    expect_error(
        &format!("{HEADER}\n2024-01-01,,M,1,0,100,0,0,30\n"),
        2,
        "serial_number",
    );
}

#[test]
fn unterminated_quote_is_an_error_not_a_panic() {
    let error = import_text(&format!("{HEADER}\n2024-01-01,\"A,M,1,0,100,0,0,30\n")).unwrap_err();
    assert!(error.to_string().contains("day.csv:"), "{error}");
}

#[test]
fn directory_of_daily_files_imports_in_order_and_skips_side_and_temporary_files() {
    let directory = tempfile::tempdir().unwrap();
    write(
        directory.path(),
        "2024-01-02.csv",
        &format!("{HEADER}\n2024-01-02,A,M,1,1,100,9,0,30\n"),
    );
    write(
        directory.path(),
        "2024-01-01.csv",
        &format!("{HEADER}\n2024-01-01,A,M,1,0,100,1,0,30\n"),
    );
    write(directory.path(), "2024-01-03.tmp", "garbage");
    write(
        directory.path(),
        "failure_modes.csv",
        "serial_number,model,failure_mode,failure_date\nA,M,thermal,2024-01-02\n",
    );
    let fleet = import_fleet(directory.path(), |_, _| {}).unwrap();
    assert_eq!(fleet.nodes.len(), 1);
    assert_eq!(fleet.nodes[0].values.len(), 2);
    assert_eq!(fleet.nodes[0].values[0][index::SMART_5], 1.0);
    assert_eq!(
        fleet.nodes[0].failure_day,
        Some(parse_day("2024-01-02").unwrap())
    );
}

#[test]
fn missing_file_and_empty_directory_are_clear_errors() {
    let directory = tempfile::tempdir().unwrap();
    assert!(matches!(
        import_fleet(directory.path(), |_, _| {}),
        Err(ImportError::NoFiles { .. })
    ));
    let error = import_fleet(&directory.path().join("absent"), |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("absent"), "{error}");
}
