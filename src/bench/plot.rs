//! SVG plots of the latency study: latency against `p` for one request type, with the cache on
//! and off on the same axes (mean as solid lines with points, p99 dashed).

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{CacheMode, Point, RequestType};
use crate::tool_error::{Result, ToolError};

const SIZE: (u32, u32) = (800, 480);
const CACHE_ON: RGBColor = RGBColor(31, 119, 180);
const CACHE_OFF: RGBColor = RGBColor(214, 39, 40);

/// One request type's plot, as SVG text.
pub fn latency_svg(points: &[Point], kind: RequestType) -> Result<String> {
    let mut svg = String::new();
    draw(&mut svg, points, kind).map_err(|e| ToolError::cannot("draw a plot", e))?;
    Ok(svg)
}

/// (p, milliseconds) of one statistic of one cache mode, in order of p.
fn series(
    points: &[Point],
    kind: RequestType,
    cache: CacheMode,
    value: fn(&super::TypeStats) -> f64,
) -> Vec<(f64, f64)> {
    let mut series: Vec<(f64, f64)> = points
        .iter()
        .filter(|point| point.cache == cache && point.stats(kind).count > 0)
        .map(|point| (point.p, value(point.stats(kind)) / 1000.0))
        .collect();
    series.sort_by(|a, b| a.0.total_cmp(&b.0));
    series
}

fn draw(
    svg: &mut String,
    points: &[Point],
    kind: RequestType,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = points.iter().map(|p| p.p).fold(0.0, f64::max).max(0.1);
    let y_max = points
        .iter()
        .map(|p| p.stats(kind).p99_us as f64 / 1000.0)
        .fold(0.0, f64::max)
        .max(0.01)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: latency against p", kind.title()),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.02..x_max + 0.02, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("p, the probability of ordering a toy in stock")
        .y_desc("latency (ms)")
        .y_label_formatter(&|y| format!("{y:.2}"))
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (cache, color) in [(CacheMode::On, CACHE_ON), (CacheMode::Off, CACHE_OFF)] {
        draw_mode(&mut chart, points, kind, cache, color)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Draws one cache mode's mean (solid, with points) and p99 (dashed), if it has any points.
fn draw_mode(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    points: &[Point],
    kind: RequestType,
    cache: CacheMode,
    color: RGBColor,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mean = series(points, kind, cache, |s| s.mean_us);
    if mean.is_empty() {
        return Ok(());
    }
    let label = format!("cache {}", cache.label());
    chart
        .draw_series(LineSeries::new(mean.clone(), color.stroke_width(2)))?
        .label(format!("{label}: mean"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2)));
    chart.draw_series(
        mean.iter()
            .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
    )?;
    let p99 = series(points, kind, cache, |s| s.p99_us as f64);
    chart
        .draw_series(DashedLineSeries::new(p99, 6, 4, color.stroke_width(1)))?
        .label(format!("{label}: p99"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(1)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::tests::point;

    #[test]
    fn a_plot_has_both_modes_and_a_title() {
        let points = vec![
            point(CacheMode::On, 0.0, 100.0, 0.5),
            point(CacheMode::On, 0.8, 150.0, 0.2),
            point(CacheMode::Off, 0.0, 400.0, 0.0),
            point(CacheMode::Off, 0.8, 420.0, 0.0),
        ];
        let svg = latency_svg(&points, RequestType::ProductQuery).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        for text in [
            "Product queries",
            "cache on: mean",
            "cache off: p99",
            "latency (ms)",
        ] {
            assert!(svg.contains(text), "missing '{text}'");
        }
        // A point of each series: circles at p = 0 and 0.8 for both modes.
        assert_eq!(svg.matches("<circle").count(), 4);
    }

    #[test]
    fn series_are_in_milliseconds_and_ordered_by_p() {
        let points = vec![
            point(CacheMode::On, 0.8, 300.0, 0.2),
            point(CacheMode::On, 0.0, 100.0, 0.5),
        ];
        let s = series(&points, RequestType::ProductQuery, CacheMode::On, |s| {
            s.mean_us
        });
        assert_eq!(s, vec![(0.0, 0.1), (0.8, 0.3)]);
    }
}
