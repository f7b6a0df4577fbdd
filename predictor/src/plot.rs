//! The PR curve PNG. Drawn with plotters' bitmap backend; text uses ab_glyph with a
//! TrueType font read from a well-known system path. Without such a font the chart is
//! still drawn (curves, axes, grid), only without text, so rendering never fails for
//! lack of fontconfig or fonts.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::evaluate::MethodResult;

const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a font once per process; true when text can be drawn.
fn font_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        for path in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(path) {
                // Leaked once per process: plotters keeps fonts for the program's life.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        tracing::warn!("no TrueType font found; the PR curve is drawn without text");
        false
    })
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Writes the PR curves of every method to `path` (PNG).
pub fn write_pr_curves(results: &[MethodResult], title: &str, path: &Path) -> anyhow::Result<()> {
    let text = font_available();
    let root = BitMapBackend::new(path, (900, 640)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(55);
    if text {
        builder.caption(title, ("sans-serif", 24));
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("recall")
            .y_desc("precision")
            .label_style(("sans-serif", 16));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|error| anyhow::anyhow!("{error}"))?;
    for (position, result) in results.iter().enumerate() {
        let color = COLORS[position % COLORS.len()];
        let mut points: Vec<(f64, f64)> = vec![(
            0.0,
            result.curve.first().map_or(1.0, |point| point.precision),
        )];
        points.extend(
            result
                .curve
                .iter()
                .map(|point| (point.recall, point.precision)),
        );
        let series = chart
            .draw_series(LineSeries::new(points, color.stroke_width(3)))
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        if text {
            let label = format!("{} (PR-AUC {:.3})", result.name, result.pr_auc);
            series.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(|error| anyhow::anyhow!("{error}"))?;
    }
    root.present()
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    Ok(())
}
