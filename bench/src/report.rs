//! Every figure of a run, printed as one table and written as JSON.

use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct Figure {
    section: String,
    measure: String,
    value: f64,
    unit: &'static str,
}

#[derive(Serialize)]
pub struct Report {
    label: String,
    /// Unix seconds.
    started: i64,
    figures: Vec<Figure>,
}

impl Report {
    pub fn new(label: &str) -> Self {
        Self { label: label.to_owned(), started: time::OffsetDateTime::now_utc().unix_timestamp(), figures: Vec::new() }
    }

    pub fn add(&mut self, section: &str, measure: &str, value: f64, unit: &'static str) {
        eprintln!("  {section} | {measure}: {} {unit}", format_value(value));
        self.figures.push(Figure { section: section.to_owned(), measure: measure.to_owned(), value, unit });
    }

    pub fn print(&self) {
        let width = self.figures.iter().map(|f| f.measure.len()).max().unwrap_or(0);
        let mut section = "";
        for figure in &self.figures {
            if figure.section != section {
                section = &figure.section;
                println!("\n{section}");
            }
            println!("  {:<width$}  {:>12} {}", figure.measure, format_value(figure.value), figure.unit);
        }
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// The middle value (NaN when there is none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The `p` quantile (0 to 1) of `values`, nearest rank.
pub fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(index).copied().unwrap_or(f64::NAN)
}
