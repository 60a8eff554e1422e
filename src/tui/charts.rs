//! The dashboard's pictures: a bar per layer with the threshold drawn across it (the
//! tutorial's `range` and `rmse/scale` plots), and the selected layer's histograms.
//! Plain widgets over a buffer: with eighth-block characters a terminal cell holds eight
//! bar heights, enough resolution for a glance.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::Widget;

const EIGHTHS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One bar per layer, `values[k]` for layer `k`; a window follows the selected layer when
/// there are more layers than columns.
pub struct LayerBars<'a> {
    pub label: &'a str,
    pub values: Vec<Option<f64>>,
    pub selected: Option<usize>,
    /// Drawn as a dotted line; bars over it are the ones the threshold denies.
    pub threshold: Option<f64>,
    pub denied: &'a [bool],
    pub colors: bool,
}

impl LayerBars<'_> {
    /// First layer shown when `width` columns hold the bars.
    fn window_start(&self, width: usize) -> usize {
        let n = self.values.len();
        if n <= width {
            return 0;
        }
        let centre = self.selected.unwrap_or(0);
        centre.saturating_sub(width / 2).min(n - width)
    }
}

impl Widget for LayerBars<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height < 2 || area.width < 12 {
            return;
        }
        let mut finite: Vec<f64> = self
            .values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        finite.sort_by(f64::total_cmp);
        let max = finite.last().copied().unwrap_or(0.0);
        // One outlier layer would flatten every other bar (and the threshold line) to
        // the floor: the axis stops at twice the 75th percentile or twice the threshold,
        // and bars above it end in an arrow.
        let p75 = finite
            .get((finite.len() * 3 / 4).min(finite.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
        let wanted = (2.0 * p75).max(self.threshold.filter(|t| t.is_finite()).unwrap_or(0.0) * 2.0);
        let top = if wanted > 0.0 { max.min(wanted) } else { max };
        let top = match self.threshold {
            Some(t) if t.is_finite() && t > top => t * 1.05,
            _ => top,
        };
        let axis = if top < max {
            format!(" (axis to {})", short(top))
        } else {
            String::new()
        };
        let title = match self.threshold {
            Some(t) => format!("{} max {}{axis} ┄ {}", self.label, short(max), short(t)),
            None => format!("{} max {}{axis}", self.label, short(max)),
        };
        buf.set_stringn(
            area.x,
            area.y,
            &title,
            area.width as usize,
            Style::default().add_modifier(Modifier::BOLD),
        );
        let plot = Rect {
            y: area.y + 1,
            height: area.height - 1,
            ..area
        };
        let h = plot.height as usize;
        let threshold_row = self
            .threshold
            .filter(|t| t.is_finite() && top > 0.0)
            .map(|t| ((t / top) * h as f64).round().clamp(1.0, h as f64) as usize - 1);
        // The first column is the axis, with the threshold marked on it: with a few rows
        // of height the line itself often hides behind the bars.
        let threshold_style = if self.colors {
            Style::default().fg(Color::Yellow)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        };
        for row in 0..h {
            let y = plot.y + (h - 1 - row) as u16;
            let (ch, style) = if threshold_row == Some(row) {
                ('┤', threshold_style)
            } else {
                ('│', Style::default())
            };
            buf[(plot.x, y)].set_char(ch).set_style(style);
        }
        // Few layers get wide bars (with a gap), many get one column each.
        let columns = plot.width as usize - 1;
        let bar = (columns / self.values.len().max(1)).clamp(1, 4);
        let drawn = if bar >= 3 { bar - 1 } else { bar };
        let start = self.window_start(columns / bar);
        for (slot, k) in (start..self.values.len()).take(columns / bar).enumerate() {
            let value = self.values[k].filter(|v| v.is_finite()).unwrap_or(0.0);
            let eighths = if top > 0.0 {
                ((value / top) * (h * 8) as f64).round() as usize
            } else {
                0
            };
            let over = self.threshold.is_some_and(|t| value > t);
            let mut style = Style::default();
            if self.colors {
                if self.denied.get(k).copied().unwrap_or(false) {
                    style = style.fg(Color::Magenta);
                } else if over {
                    style = style.fg(Color::Red);
                } else {
                    style = style.fg(Color::Cyan);
                }
            }
            if Some(k) == self.selected {
                style = style.add_modifier(Modifier::REVERSED);
            }
            for dx in 0..drawn {
                let x = plot.x + 1 + (slot * bar + dx) as u16;
                for row in 0..h {
                    // Rows count from the bottom.
                    let y = plot.y + (h - 1 - row) as u16;
                    let fill = eighths.saturating_sub(row * 8).min(8);
                    let on_threshold = threshold_row == Some(row) && fill == 0;
                    let (ch, cell_style) = if value > top && row == h - 1 {
                        ('↑', style)
                    } else if on_threshold {
                        ('┄', threshold_style)
                    } else {
                        (EIGHTHS[fill], style)
                    };
                    buf[(x, y)].set_char(ch).set_style(cell_style);
                }
            }
        }
    }
}

/// Counts in bins drawn as bars, heights on a log scale (value distributions after ReLU
/// are a spike at zero and a long tail; a linear scale would show only the spike).
pub struct Histogram<'a> {
    pub label: &'a str,
    pub counts: &'a [u64],
    /// Labels under the first and last bin.
    pub left: String,
    pub right: String,
    pub style: Style,
    /// The bin to mark (zero error), if any.
    pub marker: Option<usize>,
}

impl Widget for Histogram<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height < 3 || area.width < 8 || self.counts.is_empty() {
            return;
        }
        buf.set_stringn(
            area.x,
            area.y,
            self.label,
            area.width as usize,
            Style::default().add_modifier(Modifier::BOLD),
        );
        let h = (area.height - 2) as usize;
        let width = area.width as usize;
        // Several bins per column when there are more bins than columns.
        let per_col = self.counts.len().div_ceil(width);
        let columns: Vec<u64> = self
            .counts
            .chunks(per_col)
            .map(|c| c.iter().sum())
            .collect();
        let height = |c: u64| (c as f64 + 1.0).ln();
        let max = columns.iter().map(|&c| height(c)).fold(0f64, f64::max);
        for (col, &count) in columns.iter().enumerate().take(width) {
            let x = area.x + col as u16;
            let eighths = if max > 0.0 && count > 0 {
                ((height(count) / max) * (h * 8) as f64).round().max(1.0) as usize
            } else {
                0
            };
            let marked = self.marker.is_some_and(|m| m / per_col == col);
            for row in 0..h {
                let y = area.y + 1 + (h - 1 - row) as u16;
                let fill = eighths.saturating_sub(row * 8).min(8);
                let ch = if fill == 0 && marked {
                    '┊'
                } else {
                    EIGHTHS[fill]
                };
                buf[(x, y)].set_char(ch).set_style(self.style);
            }
        }
        let axis_y = area.y + area.height - 1;
        buf.set_stringn(area.x, axis_y, &self.left, width, Style::default());
        let right_x = (area.x + area.width).saturating_sub(self.right.chars().count() as u16);
        if right_x > area.x + self.left.chars().count() as u16 {
            buf.set_string(right_x, axis_y, &self.right, Style::default());
        }
    }
}

/// A number in at most about seven characters.
pub fn short(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
