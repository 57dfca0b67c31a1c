//! Hand-written SVG charts of a report (no plotting dependency): line charts over simulated
//! time, one line per policy or per series. Every chart is titled "simulated".

use std::fmt::Write;

use crate::simulate::Report;

const W: f64 = 900.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/// One named line of (x, y) points.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// A line chart as an SVG document.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, lines: &[Line]) -> String {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let x_max = nice_max(xs.fold(0.0, f64::max));
    let y_max = nice_max(ys.fold(0.0, f64::max));
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| LEFT + x / x_max * pw;
    let sy = |y: f64| TOP + ph - y / y_max * ph;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{} (simulated)</text>"#,
        escape(title)
    );
    for i in 0..=5 {
        let y = y_max * i as f64 / 5.0;
        let x = x_max * i as f64 / 5.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            sy(y),
            sy(y),
            LEFT - 6.0,
            sy(y) + 4.0,
            format_tick(y)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            sx(x),
            TOP + ph + 18.0,
            format_tick(x)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/><text x="{:.1}" y="{}" text-anchor="middle">{}</text><text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        LEFT + pw / 2.0,
        H - 12.0,
        escape(x_label),
        TOP + ph / 2.0,
        escape(y_label)
    );
    for (i, line) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut d = String::new();
        for (j, (x, y)) in line.points.iter().enumerate() {
            let _ = write!(d, "{}{:.1},{:.1} ", if j == 0 { "M" } else { "L" }, sx(*x), sy(*y));
        }
        let dash = if line.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = writeln!(svg, r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>"#, d.trim_end());
        let ly = TOP + 14.0 + i as f64 * 18.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            LEFT + pw + 12.0,
            LEFT + pw + 36.0,
            LEFT + pw + 42.0,
            ly + 4.0,
            escape(&line.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_tick(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Every chart of a report, as (file name, SVG).
pub fn charts(report: &Report) -> Vec<(String, String)> {
    let day = 86_400.0;
    let per_policy = |f: &dyn Fn(&crate::report::Sample) -> f64| -> Vec<Line> {
        report
            .policies
            .iter()
            .map(|p| Line {
                name: p.policy.clone(),
                points: p.gpu_allocation.series.iter().map(|s| (s.t_s as f64 / day, f(s))).collect(),
                dashed: false,
            })
            .collect()
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mut out = vec![
        (
            "allocation.svg".to_string(),
            line_chart(
                "GPU allocation ratio over time",
                "simulated days",
                "allocated / capacity",
                &per_policy(&|s| ratio(s.allocated_gpus, s.capacity_gpus)),
            ),
        ),
        (
            "pending.svg".to_string(),
            line_chart("Pending jobs", "simulated days", "jobs", &per_policy(&|s| s.pending_jobs as f64)),
        ),
        (
            "fragmentation.svg".to_string(),
            line_chart(
                "Fragmented GPUs (free, usable by no pending job)",
                "simulated days",
                "GPUs",
                &per_policy(&|s| s.fragmented_gpus),
            ),
        ),
    ];
    let vs_demand: Vec<Line> = report
        .policies
        .iter()
        .map(|p| Line {
            name: p.policy.clone(),
            points: p
                .gpu_allocation
                .vs_demand
                .iter()
                .map(|b| (b.demand_share_from + 0.05, b.mean_allocation_ratio))
                .collect(),
            dashed: false,
        })
        .collect();
    out.push((
        "allocation-vs-demand.svg".to_string(),
        line_chart("GPU allocation vs arrived demand", "arrived demand / capacity", "allocated / capacity", &vs_demand),
    ));
    if let Some(p) = report.policies.first() {
        let mut lines = Vec::new();
        for (contract, points) in &p.burn_down {
            lines.push(Line {
                name: format!("{contract} consumed"),
                points: points.iter().map(|b| (b.t_s as f64 / day, b.consumed_usd)).collect(),
                dashed: false,
            });
            lines.push(Line {
                name: format!("{contract} schedule"),
                points: points.iter().map(|b| (b.t_s as f64 / day, b.scheduled_usd)).collect(),
                dashed: true,
            });
        }
        if !lines.is_empty() {
            out.push((
                "burn-down.svg".to_string(),
                line_chart(&format!("Commitment burn-down ({})", p.policy), "simulated days", "US dollars", &lines),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_is_svg_with_title_and_lines() {
        let svg = line_chart(
            "t",
            "x",
            "y",
            &[Line { name: "a<b".into(), points: vec![(0.0, 0.0), (1.0, 2.0)], dashed: true }],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("t (simulated)"));
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_max(0.73), 1.0);
        assert_eq!(nice_max(130.0), 200.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
