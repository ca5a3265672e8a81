//! The CSV and SVG chart of the fleet's states over simulated time.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

/// The state classes sampled once a simulated day.
pub const CLASSES: [&str; 6] = [
    "authorized",
    "out_of_compliance",
    "expired",
    "evaluation",
    "reserved",
    "other",
];

/// One sample: the day and the number of agents in each class.
pub struct Sample {
    pub day: i64,
    pub counts: [u64; 6],
}

pub fn write(dir: &Path, samples: &[Sample], agents: usize) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut csv = String::from("day");
    for c in CLASSES {
        csv.push(',');
        csv.push_str(c);
    }
    csv.push('\n');
    for s in samples {
        let _ = write!(csv, "{}", s.day);
        for n in s.counts {
            let _ = write!(csv, ",{n}");
        }
        csv.push('\n');
    }
    let csv_path = dir.join("fleet.csv");
    std::fs::write(&csv_path, csv).map_err(|e| format!("{}: {e}", csv_path.display()))?;

    let svg_path = dir.join("fleet.svg");
    let last_day = samples.last().map_or(1, |s| s.day.max(1));
    let root = SVGBackend::new(&svg_path, (1000, 560)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Fleet of {agents} agents by state"),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0i64..last_day, 0u64..agents as u64)?;
        chart
            .configure_mesh()
            .x_desc("simulated day")
            .y_desc("agents")
            .draw()?;
        let colors = [GREEN, RED, BLACK, BLUE, MAGENTA, CYAN];
        for (i, class) in CLASSES.iter().enumerate() {
            let color = colors[i];
            chart
                .draw_series(LineSeries::new(
                    samples.iter().map(|s| (s.day, s.counts[i])),
                    color.stroke_width(2),
                ))?
                .label(*class)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("{}: {e}", svg_path.display()))?;
    Ok(())
}
