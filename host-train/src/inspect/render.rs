//! PNG figures for `convrfm inspect`: heat maps of a learned metric, grids of
//! small tiles (filters, images, gradient maps) and accuracy line charts.
//!
//! The figures are few and simple, so instead of a plotting framework this
//! module draws them itself on top of three small, well-kept crates: `image`
//! (pixel buffer and PNG encoding), `embedded-graphics` (bitmap fonts, lines
//! and markers, through a tiny [`DrawTarget`] adapter) and `colorous` (the d3
//! colour schemes). Output needs no system fonts and is deterministic.
//!
//! Every figure has a white background, a bold title and text in fixed
//! Latin-1 bitmap fonts (other characters are drawn as `?`). Inputs are
//! checked first: empty data, mismatched lengths and non-finite values are
//! errors naming the figure and the offending index, never panics. Figures are
//! saved with [`crate::output::write_atomic`], so a failed save never leaves a
//! half-written PNG.

use std::convert::Infallible;
use std::path::Path;

use anyhow::{Context, Result, bail};
use embedded_graphics::mono_font::iso_8859_1::{FONT_6X10, FONT_7X13, FONT_9X18_BOLD};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, Line, PrimitiveStyle, Rectangle, Triangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};

/// Figure titles.
const TITLE_FONT: &MonoFont<'static> = &FONT_9X18_BOLD;
/// Notes, captions, tick and axis labels, legend entries.
const TEXT_FONT: &MonoFont<'static> = &FONT_7X13;
/// Row and column indices of heat maps (they must fit small cells).
const SMALL_FONT: &MonoFont<'static> = &FONT_6X10;

const INK: Rgb888 = Rgb888::new(33, 33, 33);
const MUTED: Rgb888 = Rgb888::new(90, 90, 90);
const FRAME: Rgb888 = Rgb888::new(110, 110, 110);
const GRID: Rgb888 = Rgb888::new(228, 228, 228);

/// Blank border around every figure, in pixels.
const MARGIN: u32 = 16;
/// Largest figure side accepted, in pixels (keeps buffers bounded).
const MAX_SIDE: u64 = 16_384;
/// A heat map is scaled up to at least this many pixels per side.
const MIN_MAP_SIDE: u32 = 432;
/// Tiles are scaled up (nearest neighbour) to about this many pixels.
const TILE_TARGET: u32 = 96;
/// Captions longer than this (or than their tile is wide) are shortened.
const MAX_CAPTION_CHARS: usize = 18;
/// Legend names longer than this are shortened.
const MAX_LEGEND_CHARS: usize = 32;
/// Size of a line chart's plot area, in pixels.
const PLOT_WIDTH: u32 = 600;
const PLOT_HEIGHT: u32 = 360;

/// A rendered figure: an RGB image ready to be saved as PNG.
#[derive(Debug, Clone)]
pub struct Figure {
    image: RgbImage,
}

impl Figure {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.image.height()
    }

    /// Encodes the figure as PNG and writes it atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(
                self.image.as_raw(),
                self.width(),
                self.height(),
                ExtendedColorType::Rgb8,
            )
            .with_context(|| format!("cannot encode figure for {}", path.display()))?;
        crate::output::write_atomic(path, |w| w.write_all(&png))
            .with_context(|| format!("cannot save figure {}", path.display()))
    }
}

/// How a tile's values are turned into colours. Every tile is scaled on its
/// own (its own range), so tiles show shape, not relative magnitude: put the
/// magnitude in the caption when it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Signed values, one channel: blue < 0 < red, white at 0, symmetric
    /// about 0 over the tile's largest magnitude (filters, signed gradients).
    Diverging,
    /// One channel, viridis from the tile's minimum (dark purple) to its
    /// maximum (yellow) (gradient magnitudes, saliency).
    Sequential,
    /// One channel, black (minimum) to white (maximum) (grayscale images).
    Gray,
    /// Three channels laid out `[channel][row][column]` (red, green, blue),
    /// stretched together from the tile's minimum to its maximum (colour
    /// images).
    Rgb,
}

impl Scale {
    fn channels(self) -> usize {
        match self {
            Scale::Rgb => 3,
            Scale::Diverging | Scale::Sequential | Scale::Gray => 1,
        }
    }

    fn note(self) -> &'static str {
        match self {
            Scale::Diverging => "diverging, per tile: blue < 0 (white) < red",
            Scale::Sequential => "viridis, per tile: purple = min, yellow = max",
            Scale::Gray => "gray, per tile: black = min, white = max",
            Scale::Rgb => "RGB, per tile: stretched from min to max",
        }
    }
}

/// One small picture of a [`tile_grid`], with its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// Short text drawn under the tile (long captions are shortened).
    pub caption: String,
    /// Rows of the tile, in source cells.
    pub height: usize,
    /// Columns of the tile, in source cells.
    pub width: usize,
    /// Row-major values: `height * width` of them, or `3 * height * width`
    /// (channel-major) for [`Scale::Rgb`].
    pub values: Vec<f32>,
    /// How the values are coloured.
    pub scale: Scale,
    /// Colour range `(min, max)` shared with other tiles (the channels of
    /// one filter, say), instead of the tile's own; `None`: the tile's own.
    pub range: Option<(f32, f32)>,
}

/// One named line of a [`line_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points, joined in order of increasing `x`.
    pub points: Vec<(f64, f64)>,
}

/// Heat map of the `n x n` row-major matrix `values` (a learned metric `M`;
/// symmetry is not required), row 0 at the top. Colours diverge from white
/// at 0 (blue negative, red positive) over a scale symmetric about 0; a colour
/// bar on the right shows the scale's ends and a note under the title gives
/// the exact minimum and maximum. Rows and columns are numbered on the axes.
pub fn heat_map(title: &str, values: &[f64], n: usize) -> Result<Figure> {
    Ok(render_heat_map(title, values, n)?.0)
}

/// Where [`render_heat_map`] put the matrix cells.
#[derive(Debug, Clone, Copy)]
struct HeatGeometry {
    left: u32,
    top: u32,
    cell: u32,
}

fn render_heat_map(title: &str, values: &[f64], n: usize) -> Result<(Figure, HeatGeometry)> {
    if n == 0 {
        bail!("heat map '{title}': the matrix is empty");
    }
    let expected = n.checked_mul(n).filter(|_| n as u64 <= MAX_SIDE);
    if expected != Some(values.len()) {
        bail!(
            "heat map '{title}': {} values do not make a {n}x{n} matrix",
            values.len()
        );
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!(
            "heat map '{title}': value at row {}, column {} is {}",
            i / n,
            i % n,
            values[i]
        );
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let bound = lo.abs().max(hi.abs());

    let cell = MIN_MAP_SIDE.div_ceil(n as u32).max(1);
    let side = cell * n as u32;
    let index_chars = (n - 1).to_string().len();
    let index_width = text_width(SMALL_FONT, index_chars);
    let min_gap = (index_width + 4).max(SMALL_FONT.character_size.height + 2);
    let step = nice_steps()
        .find(|&s| s as u64 * u64::from(cell) >= u64::from(min_gap))
        .unwrap_or(n);
    let note = format!(
        "{n}x{n}, min {}, max {}; white = 0",
        format_value(lo),
        format_value(hi)
    );
    let bar_labels = [
        format!("+{}", format_value(bound)),
        "0".to_string(),
        format!("-{}", format_value(bound)),
    ];
    let bar_label_width = bar_labels
        .iter()
        .map(|s| text_width(TEXT_FONT, s.chars().count()))
        .max()
        .unwrap_or(0);

    let geometry = HeatGeometry {
        left: MARGIN + index_width + 6,
        top: MARGIN + line_height(TITLE_FONT) + 4 + line_height(TEXT_FONT) + 14,
        cell,
    };
    let HeatGeometry { left, top, cell } = geometry;
    let bar_left = left + side + 24;
    let bar_width = 18;
    let content_width = (bar_left + bar_width + 6 + bar_label_width)
        .max(MARGIN + text_width(TITLE_FONT, title.chars().count()))
        .max(MARGIN + text_width(TEXT_FONT, note.chars().count()));
    let height = top + side + 4 + line_height(SMALL_FONT) + MARGIN;
    let mut canvas = Canvas::new(
        "heat map",
        title,
        u64::from(content_width + MARGIN),
        u64::from(height),
    )?;

    canvas.text(title, TITLE_FONT, MARGIN, MARGIN, Alignment::Left, INK);
    let note_top = MARGIN + line_height(TITLE_FONT) + 4;
    canvas.text(&note, TEXT_FONT, MARGIN, note_top, Alignment::Left, MUTED);

    for (i, &v) in values.iter().enumerate() {
        let (r, c) = ((i / n) as u32, (i % n) as u32);
        canvas.fill_rect(
            left + c * cell,
            top + r * cell,
            cell,
            cell,
            diverging(v, bound),
        );
    }
    canvas.frame(left, top, side, side);

    for i in (0..n).step_by(step) {
        let label = i.to_string();
        let centre = i as u32 * cell + cell / 2;
        let row_y = (top + centre).saturating_sub(SMALL_FONT.character_size.height / 2);
        canvas.text(&label, SMALL_FONT, left - 5, row_y, Alignment::Right, INK);
        canvas.text(
            &label,
            SMALL_FONT,
            left + centre,
            top + side + 4,
            Alignment::Center,
            INK,
        );
    }

    for y in 0..side {
        let v = bound * (1.0 - 2.0 * f64::from(y) / f64::from((side - 1).max(1)));
        canvas.fill_rect(bar_left, top + y, bar_width, 1, diverging(v, bound));
    }
    canvas.frame(bar_left, top, bar_width, side);
    let label_x = bar_left + bar_width + 6;
    let half_text = TEXT_FONT.character_size.height / 2;
    let label_tops = [
        top,
        (top + side / 2).saturating_sub(half_text),
        top + side - TEXT_FONT.character_size.height,
    ];
    for (label, y) in bar_labels.iter().zip(label_tops) {
        canvas.text(label, TEXT_FONT, label_x, y, Alignment::Left, INK);
    }

    Ok((canvas.finish(), geometry))
}

/// Grid of captioned tiles, `columns` per row, under a title and one note
/// line per colour scale used. All tiles are scaled up by the same whole
/// factor (nearest neighbour, so a 3x3 filter shows nine crisp squares) to
/// about 96 pixels for the largest tile; each tile is coloured on its own
/// range (see [`Scale`]), and a constant tile is drawn in the middle colour.
pub fn tile_grid(title: &str, tiles: &[Tile], columns: usize) -> Result<Figure> {
    if tiles.is_empty() {
        bail!("tile grid '{title}': no tiles");
    }
    if columns == 0 {
        bail!("tile grid '{title}': columns must be at least 1");
    }
    for (i, tile) in tiles.iter().enumerate() {
        check_tile(title, i, tile)?;
    }

    let max_h = tiles.iter().map(|t| t.height).max().unwrap_or(1) as u32;
    let max_w = tiles.iter().map(|t| t.width).max().unwrap_or(1) as u32;
    let scale = TILE_TARGET.div_ceil(max_h.max(max_w)).max(1);
    let (box_w, box_h) = (max_w * scale, max_h * scale);
    let char_w = TEXT_FONT.character_size.width + TEXT_FONT.character_spacing;
    let max_chars = MAX_CAPTION_CHARS.max((box_w / char_w) as usize);
    let captions: Vec<String> = tiles.iter().map(|t| fit(&t.caption, max_chars)).collect();
    let caption_w = captions
        .iter()
        .map(|c| text_width(TEXT_FONT, c.chars().count()))
        .max()
        .unwrap_or(0);
    let cell_w = box_w.max(caption_w);
    let cell_h = box_h + 5 + line_height(TEXT_FONT);
    let (gap_x, gap_y) = (18, 14);
    let cols = columns.min(tiles.len()) as u64;
    let rows = tiles.len().div_ceil(columns) as u64;

    let mut seen = Vec::new();
    for tile in tiles {
        if !seen.contains(&tile.scale) {
            seen.push(tile.scale);
        }
    }
    let notes: Vec<&str> = seen.iter().map(|s| s.note()).collect();
    let notes_w = notes
        .iter()
        .map(|n| text_width(TEXT_FONT, n.chars().count()))
        .max()
        .unwrap_or(0);

    let grid_w = cols * u64::from(cell_w) + (cols - 1) * gap_x;
    let grid_h = rows * u64::from(cell_h) + (rows - 1) * gap_y;
    let width = grid_w
        .max(u64::from(text_width(TITLE_FONT, title.chars().count())))
        .max(u64::from(notes_w))
        + 2 * u64::from(MARGIN);
    let note_top = MARGIN + line_height(TITLE_FONT) + 4;
    let note_h = line_height(TEXT_FONT) + 2;
    let grid_top = note_top + notes.len() as u32 * note_h + 12;
    let height = u64::from(grid_top) + grid_h + u64::from(MARGIN);
    let mut canvas = Canvas::new("tile grid", title, width, height)?;
    // Both fit in u32: the canvas accepted them.
    let grid_left = ((width - grid_w) / 2) as u32;

    canvas.text(title, TITLE_FONT, MARGIN, MARGIN, Alignment::Left, INK);
    for (i, note) in notes.iter().enumerate() {
        let y = note_top + i as u32 * note_h;
        canvas.text(note, TEXT_FONT, MARGIN, y, Alignment::Left, MUTED);
    }

    for (i, (tile, caption)) in tiles.iter().zip(&captions).enumerate() {
        let (row, col) = ((i / columns) as u32, (i % columns) as u32);
        let cell_x = grid_left + col * (cell_w + gap_x as u32);
        let cell_y = grid_top + row * (cell_h + gap_y as u32);
        let (tw, th) = (tile.width as u32 * scale, tile.height as u32 * scale);
        let x = cell_x + (cell_w - tw) / 2;
        let y = cell_y + (box_h - th) / 2;
        let colours = tile_colours(tile);
        for (j, colour) in colours.into_iter().enumerate() {
            let (r, c) = ((j / tile.width) as u32, (j % tile.width) as u32);
            canvas.fill_rect(x + c * scale, y + r * scale, scale, scale, colour);
        }
        canvas.frame(x, y, tw, th);
        canvas.text(
            caption,
            TEXT_FONT,
            cell_x + cell_w / 2,
            cell_y + box_h + 5,
            Alignment::Center,
            INK,
        );
    }
    Ok(canvas.finish())
}

/// Checks a tile's shape and values; the error names the figure and tile.
fn check_tile(title: &str, index: usize, tile: &Tile) -> Result<()> {
    let name = format!("tile grid '{title}': tile {index} ('{}')", tile.caption);
    if tile.height == 0 || tile.width == 0 {
        bail!("{name} is empty ({}x{})", tile.height, tile.width);
    }
    if tile.height as u64 > MAX_SIDE || tile.width as u64 > MAX_SIDE {
        bail!("{name} is too large ({}x{})", tile.height, tile.width);
    }
    if let Some((lo, hi)) = tile.range {
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            bail!("{name} has an invalid colour range ({lo}, {hi})");
        }
    }
    let channels = tile.scale.channels();
    let expected = channels * tile.height * tile.width;
    if tile.values.len() != expected {
        bail!(
            "{name} has {} values, expected {channels} x {} x {} = {expected}",
            tile.values.len(),
            tile.height,
            tile.width
        );
    }
    if let Some(i) = tile.values.iter().position(|v| !v.is_finite()) {
        let plane = tile.height * tile.width;
        bail!(
            "{name}: value at channel {}, row {}, column {} is {}",
            i / plane,
            i % plane / tile.width,
            i % tile.width,
            tile.values[i]
        );
    }
    Ok(())
}

/// The display colour of each of a tile's cells, row-major.
fn tile_colours(tile: &Tile) -> Vec<Rgb888> {
    let values = &tile.values;
    let (lo, hi) = tile.range.unwrap_or_else(|| {
        (
            values.iter().copied().fold(f32::INFINITY, f32::min),
            values.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        )
    });
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    match tile.scale {
        Scale::Diverging => {
            let bound = lo.abs().max(hi.abs());
            values
                .iter()
                .map(|&v| diverging(f64::from(v), bound))
                .collect()
        }
        Scale::Sequential => values
            .iter()
            .map(|&v| rgb(colorous::VIRIDIS.eval_continuous(unit(f64::from(v), lo, hi))))
            .collect(),
        Scale::Gray => values
            .iter()
            .map(|&v| {
                let g = byte(unit(f64::from(v), lo, hi));
                Rgb888::new(g, g, g)
            })
            .collect(),
        Scale::Rgb => {
            let plane = tile.height * tile.width;
            let level = |v: f32| byte(unit(f64::from(v), lo, hi));
            (0..plane)
                .map(|j| {
                    Rgb888::new(
                        level(values[j]),
                        level(values[plane + j]),
                        level(values[2 * plane + j]),
                    )
                })
                .collect()
        }
    }
}

/// Line chart of accuracy-like series against iteration: axes with tick
/// labels, light grid lines, axis labels (the y label sits above the axis), a
/// legend right of the plot and a marker on every point (shape and colour
/// differ per series). Axis ranges fit the data with a small margin; when all
/// x values are whole numbers the x ticks are too.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<Figure> {
    Ok(render_line_chart(title, x_label, y_label, series)?.0)
}

/// Where [`render_line_chart`] put the plot area.
#[derive(Debug, Clone, Copy)]
struct PlotArea {
    left: u32,
    top: u32,
}

fn render_line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(Figure, PlotArea)> {
    if series.is_empty() {
        bail!("line chart '{title}': no series");
    }
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            bail!(
                "line chart '{title}': series {i} ('{}') has no points",
                s.name
            );
        }
        if let Some(j) = s
            .points
            .iter()
            .position(|(x, y)| !x.is_finite() || !y.is_finite())
        {
            let (x, y) = s.points[j];
            bail!(
                "line chart '{title}': series {i} ('{}') point {j} is ({x}, {y})",
                s.name
            );
        }
    }
    let all = || series.iter().flat_map(|s| s.points.iter().copied());
    let whole_x = all().all(|(x, _)| x.fract() == 0.0);
    let x_axis = Axis::fit(title, all().map(|p| p.0), whole_x)?;
    let y_axis = Axis::fit(title, all().map(|p| p.1), false)?;

    let y_ticks = y_axis.ticks();
    let y_tick_w = y_ticks
        .iter()
        .map(|&v| text_width(TEXT_FONT, y_axis.label(v).chars().count()))
        .max()
        .unwrap_or(0);
    let names: Vec<String> = series
        .iter()
        .map(|s| fit(&s.name, MAX_LEGEND_CHARS))
        .collect();
    let name_w = names
        .iter()
        .map(|n| text_width(TEXT_FONT, n.chars().count()))
        .max()
        .unwrap_or(0);

    let text_h = line_height(TEXT_FONT);
    let y_label_top = MARGIN + line_height(TITLE_FONT) + 10;
    let area = PlotArea {
        left: MARGIN + y_tick_w + 10,
        top: y_label_top + text_h + 8,
    };
    let PlotArea { left, top } = area;
    let bottom = top + PLOT_HEIGHT;
    let right = left + PLOT_WIDTH;
    let x_label_top = bottom + 8 + text_h + 8;
    let legend_left = right + 24;
    let legend_row = 20;
    let width = (legend_left + 36 + name_w)
        .max(MARGIN + text_width(TITLE_FONT, title.chars().count()))
        .max(left + text_width(TEXT_FONT, y_label.chars().count()))
        .max(left + PLOT_WIDTH / 2 + text_width(TEXT_FONT, x_label.chars().count()) / 2)
        + MARGIN;
    let legend_h = u64::from(legend_row) * series.len() as u64;
    let height = u64::from(x_label_top + text_h + MARGIN).max(u64::from(top) + legend_h + 8);
    let mut canvas = Canvas::new("line chart", title, u64::from(width), height)?;

    canvas.text(title, TITLE_FONT, MARGIN, MARGIN, Alignment::Left, INK);
    canvas.text(y_label, TEXT_FONT, left, y_label_top, Alignment::Left, INK);
    canvas.text(
        x_label,
        TEXT_FONT,
        left + PLOT_WIDTH / 2,
        x_label_top,
        Alignment::Center,
        INK,
    );

    let px = |x: f64| left as i32 + x_axis.fraction(x) * PLOT_WIDTH as i32 / 10_000;
    let py = |y: f64| bottom as i32 - y_axis.fraction(y) * PLOT_HEIGHT as i32 / 10_000;
    let thin = |c| PrimitiveStyle::with_stroke(c, 1);
    for &v in &y_ticks {
        let y = py(v);
        canvas.draw(
            &Line::new(Point::new(left as i32, y), Point::new(right as i32, y))
                .into_styled(thin(GRID)),
        );
        canvas.draw(
            &Line::new(Point::new(left as i32 - 5, y), Point::new(left as i32, y))
                .into_styled(thin(FRAME)),
        );
        let label_top = (y - (TEXT_FONT.character_size.height / 2) as i32).max(0) as u32;
        canvas.text(
            &y_axis.label(v),
            TEXT_FONT,
            left - 8,
            label_top,
            Alignment::Right,
            INK,
        );
    }
    for v in x_axis.ticks() {
        let x = px(v);
        canvas.draw(
            &Line::new(Point::new(x, top as i32), Point::new(x, bottom as i32))
                .into_styled(thin(GRID)),
        );
        canvas.draw(
            &Line::new(
                Point::new(x, bottom as i32),
                Point::new(x, bottom as i32 + 5),
            )
            .into_styled(thin(FRAME)),
        );
        canvas.text(
            &x_axis.label(v),
            TEXT_FONT,
            x.max(0) as u32,
            bottom + 8,
            Alignment::Center,
            INK,
        );
    }
    canvas.frame(left, top, PLOT_WIDTH, PLOT_HEIGHT);

    for (i, s) in series.iter().enumerate() {
        let colour = series_colour(i);
        let mut points: Vec<Point> = s
            .points
            .iter()
            .map(|&(x, y)| Point::new(px(x), py(y)))
            .collect();
        points.sort_by_key(|p| p.x);
        let thick = PrimitiveStyle::with_stroke(colour, 2);
        for pair in points.windows(2) {
            canvas.draw(&Line::new(pair[0], pair[1]).into_styled(thick));
        }
        for &p in &points {
            canvas.marker(i, p, colour);
        }
    }

    for (i, name) in names.iter().enumerate() {
        let colour = series_colour(i);
        let y = top + 4 + legend_row * i as u32;
        let mid = (y + text_h / 2) as i32;
        canvas.draw(
            &Line::new(
                Point::new(legend_left as i32, mid),
                Point::new(legend_left as i32 + 28, mid),
            )
            .into_styled(PrimitiveStyle::with_stroke(colour, 2)),
        );
        canvas.marker(i, Point::new(legend_left as i32 + 14, mid), colour);
        canvas.text(name, TEXT_FONT, legend_left + 36, y, Alignment::Left, INK);
    }

    Ok((canvas.finish(), area))
}

/// The colour of series `index` (Tableau 10, repeating).
fn series_colour(index: usize) -> Rgb888 {
    rgb(colorous::TABLEAU10[index % colorous::TABLEAU10.len()])
}

/// A chart axis: the data range widened by a small margin, and a round tick
/// step.
#[derive(Debug, Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
    decimals: usize,
}

impl Axis {
    /// Fits an axis to finite `values` (at least one); `whole` forces a whole
    /// tick step.
    fn fit(title: &str, values: impl Iterator<Item = f64>, whole: bool) -> Result<Axis> {
        let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if hi <= lo {
            let pad = (lo.abs() * 0.05).max(1.0);
            lo -= pad;
            hi += pad;
        }
        let span = hi - lo;
        if !span.is_finite() {
            bail!("line chart '{title}': values span too wide a range to plot");
        }
        lo -= span * 0.05;
        hi += span * 0.05;
        let raw = span / 8.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let nice = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .find(|&m| raw <= m * magnitude)
            .unwrap_or(10.0);
        let mut step = nice * magnitude;
        if whole {
            step = step.max(1.0);
        }
        let decimals = (-step.log10().floor()).clamp(0.0, 9.0) as usize;
        Ok(Axis {
            lo,
            hi,
            step,
            decimals,
        })
    }

    /// Tick values: the multiples of the step inside the range.
    fn ticks(&self) -> Vec<f64> {
        let first = (self.lo / self.step).ceil() as i64;
        let last = (self.hi / self.step).floor() as i64;
        // At most a dozen or so for real data; the cap only guards against
        // saturated conversions on absurd ranges.
        (first..=last)
            .take(64)
            .map(|k| k as f64 * self.step)
            .collect()
    }

    fn label(&self, v: f64) -> String {
        // Avoid "-0" for a tick that is zero up to rounding.
        let v = if v.abs() < self.step * 1e-6 { 0.0 } else { v };
        format!("{v:.*}", self.decimals)
    }

    /// Position of `v` along the axis in units of 1/10 000.
    fn fraction(&self, v: f64) -> i32 {
        ((v - self.lo) / (self.hi - self.lo) * 10_000.0).round() as i32
    }
}

/// An RGB image that `embedded-graphics` can draw on; pixels outside it are
/// dropped.
struct Canvas {
    image: RgbImage,
}

impl Canvas {
    /// A white canvas; `kind` and `title` name the figure in errors.
    fn new(kind: &str, title: &str, width: u64, height: u64) -> Result<Canvas> {
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            bail!(
                "{kind} '{title}': a {width}x{height} pixel figure is too large \
                 (at most {MAX_SIDE} pixels per side)"
            );
        }
        Ok(Canvas {
            image: RgbImage::from_pixel(width as u32, height as u32, Rgb([255, 255, 255])),
        })
    }

    fn finish(self) -> Figure {
        Figure { image: self.image }
    }

    fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, colour: Rgb888) {
        let x_end = x.saturating_add(w).min(self.image.width());
        let y_end = y.saturating_add(h).min(self.image.height());
        for yy in y..y_end {
            for xx in x..x_end {
                self.image
                    .put_pixel(xx, yy, Rgb([colour.r(), colour.g(), colour.b()]));
            }
        }
    }

    /// A 1-pixel frame just outside the `w x h` box at `(x, y)`.
    fn frame(&mut self, x: u32, y: u32, w: u32, h: u32) {
        let outline = Rectangle::new(
            Point::new(x as i32 - 1, y as i32 - 1),
            Size::new(w + 2, h + 2),
        );
        self.draw(&outline.into_styled(PrimitiveStyle::with_stroke(FRAME, 1)));
    }

    /// Draws one line of text whose top is at `y`; `x` is its left end,
    /// centre or right end depending on `align`.
    fn text(
        &mut self,
        s: &str,
        font: &MonoFont<'_>,
        x: u32,
        y: u32,
        align: Alignment,
        colour: Rgb888,
    ) {
        let style = MonoTextStyle::new(font, colour);
        let layout = TextStyleBuilder::new()
            .alignment(align)
            .baseline(Baseline::Top)
            .build();
        let line = one_line(s);
        self.draw(&Text::with_text_style(
            &line,
            Point::new(x as i32, y as i32),
            style,
            layout,
        ));
    }

    /// The marker of series `index` centred on `p`: a circle, square,
    /// triangle or diamond.
    fn marker(&mut self, index: usize, p: Point, colour: Rgb888) {
        let fill = PrimitiveStyle::with_fill(colour);
        match index % 4 {
            0 => self.draw(&Circle::with_center(p, 9).into_styled(fill)),
            1 => self.draw(&Rectangle::with_center(p, Size::new(8, 8)).into_styled(fill)),
            2 => self.draw(
                &Triangle::new(
                    p + Point::new(0, -5),
                    p + Point::new(-5, 4),
                    p + Point::new(5, 4),
                )
                .into_styled(fill),
            ),
            _ => {
                for dy in -5i32..=5 {
                    let half = 5 - dy.abs();
                    let row = Rectangle::new(
                        p + Point::new(-half, dy),
                        Size::new(2 * half as u32 + 1, 1),
                    );
                    self.draw(&row.into_styled(fill));
                }
            }
        }
    }

    fn draw<D: Drawable<Color = Rgb888>>(&mut self, item: &D) {
        let Ok(_) = item.draw(self);
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.image.width(), self.image.height())
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Rgb888>>,
    {
        let (w, h) = self.image.dimensions();
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y)) {
                if x < w && y < h {
                    self.image.put_pixel(x, y, Rgb([c.r(), c.g(), c.b()]));
                }
            }
        }
        Ok(())
    }
}

/// Blue (negative), white (0), red (positive), over `[-bound, bound]`.
fn diverging(v: f64, bound: f64) -> Rgb888 {
    let t = if bound > 0.0 {
        0.5 + 0.5 * v / bound
    } else {
        0.5
    };
    // RdBu runs from red at 0 to blue at 1.
    rgb(colorous::RED_BLUE.eval_continuous(1.0 - t))
}

/// `v` mapped from `[lo, hi]` to `[0, 1]`; 0.5 when the range is empty.
fn unit(v: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo { (v - lo) / (hi - lo) } else { 0.5 }
}

/// A `[0, 1]` level as a byte.
fn byte(t: f64) -> u8 {
    (t.clamp(0.0, 1.0) * 255.0).round() as u8
}

fn rgb(c: colorous::Color) -> Rgb888 {
    Rgb888::new(c.r, c.g, c.b)
}

/// Width in pixels of `chars` characters of `font`.
fn text_width(font: &MonoFont<'_>, chars: usize) -> u32 {
    let n = chars as u32;
    n * font.character_size.width + n.saturating_sub(1) * font.character_spacing
}

fn line_height(font: &MonoFont<'_>) -> u32 {
    font.character_size.height
}

/// 1, 2, 5, 10, 20, 50, ...: candidate label steps.
fn nice_steps() -> impl Iterator<Item = usize> {
    (0..19u32).flat_map(|k| [1, 2, 5].map(|m| m * 10usize.pow(k)))
}

/// `s` on one line, shortened to `max_chars` characters with a trailing "..".
fn fit(s: &str, max_chars: usize) -> String {
    let s = one_line(s);
    if s.chars().count() <= max_chars {
        return s;
    }
    let mut short: String = s.chars().take(max_chars.saturating_sub(2)).collect();
    short.push_str("..");
    short
}

/// `s` with line breaks and tabs turned into spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A compact label for a value: about three significant digits.
fn format_value(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let decimals = (2.0 - a.log10().floor()).clamp(0.0, 6.0) as usize;
        format!("{v:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(fig: &Figure, x: u32, y: u32) -> [u8; 3] {
        fig.image.get_pixel(x, y).0
    }

    fn tile(caption: &str, h: usize, w: usize, values: Vec<f32>, scale: Scale) -> Tile {
        Tile {
            caption: caption.to_string(),
            height: h,
            width: w,
            values,
            scale,
            range: None,
        }
    }

    fn is_red([r, g, b]: [u8; 3]) -> bool {
        r > g.saturating_add(50) && r > b.saturating_add(50)
    }

    fn is_blue([r, g, b]: [u8; 3]) -> bool {
        b > r.saturating_add(50) && b > g.saturating_add(20)
    }

    fn identity(n: usize, diagonal: f64) -> Vec<f64> {
        (0..n * n)
            .map(|i| if i / n == i % n { diagonal } else { 0.0 })
            .collect()
    }

    fn cell_centre(fig: &Figure, g: HeatGeometry, r: u32, c: u32) -> [u8; 3] {
        pixel(
            fig,
            g.left + c * g.cell + g.cell / 2,
            g.top + r * g.cell + g.cell / 2,
        )
    }

    #[test]
    fn heat_map_colours_positive_red_negative_blue_zero_white() {
        let mut values = identity(9, 2.0);
        values[9 + 2] = -2.0;
        values[2 * 9 + 1] = -2.0;
        let (fig, g) = render_heat_map("M", &values, 9).unwrap();
        assert!(fig.width() >= 360, "too narrow: {}", fig.width());
        for i in 0..9 {
            let p = cell_centre(&fig, g, i, i);
            assert!(is_red(p), "diagonal cell {i} not red: {p:?}");
        }
        let p = cell_centre(&fig, g, 1, 2);
        assert!(is_blue(p), "negative cell not blue: {p:?}");
        for (r, c) in [(0, 1), (4, 7), (8, 0)] {
            let [pr, pg, pb] = cell_centre(&fig, g, r, c);
            assert!(
                pr > 235 && pg > 235 && pb > 235,
                "zero cell ({r}, {c}) not white: {pr} {pg} {pb}"
            );
        }
    }

    #[test]
    fn heat_map_is_at_least_360_wide_and_handles_large_and_zero() {
        let fig = heat_map("zeros", &[0.0; 4], 2).unwrap();
        assert!(fig.width() >= 360 && fig.height() >= 360);
        let fig = heat_map("big", &identity(600, 1.0), 600).unwrap();
        assert!(fig.width() > 600 && fig.height() > 600);
    }

    #[test]
    fn heat_map_rejects_bad_input() {
        let err = heat_map("metric M", &[], 0).unwrap_err().to_string();
        assert!(err.contains("metric M"), "{err}");
        let err = heat_map("metric M", &[1.0; 5], 2).unwrap_err().to_string();
        assert!(
            err.contains("metric M") && err.contains("5 values"),
            "{err}"
        );
        let mut values = identity(3, 1.0);
        values[5] = f64::NAN;
        let err = heat_map("metric M", &values, 3).unwrap_err().to_string();
        assert!(
            err.contains("metric M") && err.contains("row 1, column 2"),
            "{err}"
        );
        assert!(err.contains("NaN"), "{err}");
    }

    #[test]
    fn tile_grid_grows_with_tiles_and_columns() {
        let tiles = |k: usize| -> Vec<Tile> {
            (0..k)
                .map(|i| {
                    tile(
                        &format!("f{i}"),
                        3,
                        3,
                        vec![i as f32 - 2.0; 9],
                        Scale::Diverging,
                    )
                })
                .collect()
        };
        let four_in_two = tile_grid("filters", &tiles(4), 2).unwrap();
        let eight_in_two = tile_grid("filters", &tiles(8), 2).unwrap();
        let four_in_four = tile_grid("filters", &tiles(4), 4).unwrap();
        assert!(eight_in_two.height() > four_in_two.height());
        assert!(four_in_four.width() > four_in_two.width());
        assert!(four_in_four.height() < four_in_two.height());
        // More columns than tiles lays out only as many columns as tiles.
        let four_in_nine = tile_grid("filters", &tiles(4), 9).unwrap();
        assert_eq!(four_in_nine.width(), four_in_four.width());
    }

    #[test]
    fn tile_cells_are_crisp_squares_of_at_least_48_px() {
        // A 3x3 filter: +1 top-left, -1 bottom-right, 0 elsewhere.
        let mut values = vec![0.0; 9];
        values[0] = 1.0;
        values[8] = -1.0;
        let fig = tile_grid("t", &[tile("f", 3, 3, values, Scale::Diverging)], 1).unwrap();
        let is_red: Vec<(u32, u32)> = (0..fig.height())
            .flat_map(|y| (0..fig.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| is_red(pixel(&fig, x, y)))
            .collect();
        let (x0, y0) = is_red[0];
        let (x1, y1) = is_red[is_red.len() - 1];
        let side = x1 - x0 + 1;
        assert_eq!(side, y1 - y0 + 1, "red cell is not square");
        assert_eq!(is_red.len() as u32, side * side, "red cell is not solid");
        assert!(3 * side >= 48, "tile only {} px", 3 * side);
        assert!(is_blue(pixel(
            &fig,
            x0 + 2 * side + side / 2,
            y0 + 2 * side + side / 2
        )));
    }

    #[test]
    fn constant_tiles_render_mid_colour() {
        let tiles = [
            tile("zero", 2, 2, vec![0.0; 4], Scale::Diverging),
            tile("five", 2, 2, vec![5.0; 4], Scale::Sequential),
            tile("gray", 2, 2, vec![-3.0; 4], Scale::Gray),
            tile("rgb", 2, 2, vec![7.0; 12], Scale::Rgb),
        ];
        let fig = tile_grid("constant", &tiles, 4).unwrap();
        let mid_viridis = rgb(colorous::VIRIDIS.eval_continuous(0.5));
        let count = |want: [u8; 3]| {
            (0..fig.height())
                .flat_map(|y| (0..fig.width()).map(move |x| (x, y)))
                .filter(|&(x, y)| pixel(&fig, x, y) == want)
                .count()
        };
        assert!(count([mid_viridis.r(), mid_viridis.g(), mid_viridis.b()]) >= 48 * 48);
        assert!(count([128, 128, 128]) >= 2 * 48 * 48, "gray and RGB tiles");
    }

    #[test]
    fn rgb_tiles_show_their_channels() {
        // 1x2 image: left pixel pure red, right pixel pure blue.
        let values = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let fig = tile_grid("rgb", &[tile("img", 1, 2, values, Scale::Rgb)], 1).unwrap();
        let count = |want: [u8; 3]| {
            (0..fig.height())
                .flat_map(|y| (0..fig.width()).map(move |x| (x, y)))
                .filter(|&(x, y)| pixel(&fig, x, y) == want)
                .count()
        };
        assert!(count([255, 0, 0]) >= 48 * 48);
        assert!(count([0, 0, 255]) >= 48 * 48);
    }

    #[test]
    fn tile_grid_rejects_bad_input() {
        let err = tile_grid("grads", &[], 3).unwrap_err().to_string();
        assert!(err.contains("grads"), "{err}");
        let ok = tile("a", 2, 2, vec![0.0; 4], Scale::Gray);
        let err = tile_grid("grads", std::slice::from_ref(&ok), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("columns"), "{err}");
        let mut values = vec![0.0; 8];
        values[7] = f32::NAN;
        let nan = tile("digit 7", 2, 2, values.clone(), Scale::Gray);
        let err = tile_grid("grads", &[ok.clone(), nan], 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("grads") && err.contains("tile 1") && err.contains("digit 7"),
            "{err}"
        );
        assert!(err.contains("values, expected 1 x 2 x 2"), "{err}");
        let nan = tile("digit 7", 2, 2, values[4..].to_vec(), Scale::Gray);
        let err = tile_grid("grads", &[ok.clone(), nan], 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tile 1") && err.contains("row 1, column 1") && err.contains("NaN"),
            "{err}"
        );
        let rgb_short = tile("cat", 2, 2, vec![0.0; 4], Scale::Rgb);
        let err = tile_grid("grads", &[rgb_short], 2).unwrap_err().to_string();
        assert!(err.contains("expected 3 x 2 x 2 = 12"), "{err}");
        let empty = tile("e", 0, 3, vec![], Scale::Sequential);
        let err = tile_grid("grads", &[empty], 2).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn long_captions_are_shortened_not_overlapping() {
        let long = "a very long caption that would run into its neighbours";
        let tiles: Vec<Tile> = (0..3)
            .map(|_| tile(long, 3, 3, vec![1.0; 9], Scale::Sequential))
            .collect();
        let fig = tile_grid("captions", &tiles, 3).unwrap();
        let cell = text_width(TEXT_FONT, MAX_CAPTION_CHARS).max(TILE_TARGET);
        assert!(fig.width() < 3 * (cell + 18) + 2 * MARGIN);
        assert_eq!(fit(long, 10), "a very l..");
        assert_eq!(fit("two\nlines", 20), "two lines");
    }

    /// Rows (top, bottom) of pixels of `colour` inside the plot area.
    fn rows_of(fig: &Figure, area: PlotArea, colour: Rgb888) -> (u32, u32) {
        let want = [colour.r(), colour.g(), colour.b()];
        let rows: Vec<u32> = (area.top..area.top + PLOT_HEIGHT)
            .filter(|&y| (area.left..area.left + PLOT_WIDTH).any(|x| pixel(fig, x, y) == want))
            .collect();
        (rows[0], rows[rows.len() - 1])
    }

    #[test]
    fn line_chart_puts_higher_values_higher() {
        let series = [
            Series {
                name: "validation".into(),
                points: vec![(0.0, 50.0), (1.0, 52.0), (2.0, 51.0)],
            },
            Series {
                name: "test".into(),
                points: vec![(0.0, 90.0), (1.0, 91.0), (2.0, 93.0)],
            },
        ];
        let (fig, area) = render_line_chart("acc", "iteration", "accuracy (%)", &series).unwrap();
        let (low_top, low_bottom) = rows_of(&fig, area, series_colour(0));
        let (high_top, high_bottom) = rows_of(&fig, area, series_colour(1));
        assert!(
            high_bottom < low_top,
            "{high_top}..{high_bottom} vs {low_top}..{low_bottom}"
        );
        assert!(low_bottom < area.top + PLOT_HEIGHT && high_top > area.top);
    }

    #[test]
    fn line_chart_handles_single_points_and_rejects_bad_input() {
        let one = [Series {
            name: "layer 1".into(),
            points: vec![(0.0, 97.5)],
        }];
        let fig = line_chart("acc", "iteration", "accuracy (%)", &one).unwrap();
        assert!(fig.width() > PLOT_WIDTH && fig.height() > PLOT_HEIGHT);

        let err = line_chart("acc", "x", "y", &[]).unwrap_err().to_string();
        assert!(err.contains("acc"), "{err}");
        let empty = [Series {
            name: "layer 2".into(),
            points: vec![],
        }];
        let err = line_chart("acc", "x", "y", &empty).unwrap_err().to_string();
        assert!(
            err.contains("layer 2") && err.contains("no points"),
            "{err}"
        );
        let nan = [Series {
            name: "test".into(),
            points: vec![(0.0, 1.0), (1.0, f64::NAN)],
        }];
        let err = line_chart("acc", "x", "y", &nan).unwrap_err().to_string();
        assert!(err.contains("acc") && err.contains("point 1"), "{err}");
    }

    #[test]
    fn axis_ticks_are_round_and_whole_for_iterations() {
        let axis = Axis::fit("t", [0.0, 3.0].into_iter(), true).unwrap();
        assert_eq!(axis.ticks(), vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(axis.label(2.0), "2");
        let axis = Axis::fit("t", [97.1, 98.4].into_iter(), false).unwrap();
        let labels: Vec<String> = axis.ticks().iter().map(|&v| axis.label(v)).collect();
        assert_eq!(labels.first().map(String::as_str), Some("97.2"));
        assert_eq!(labels.last().map(String::as_str), Some("98.4"));
    }

    #[test]
    fn save_writes_a_png_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.png");
        let fig = heat_map("M", &identity(4, 1.0), 4).unwrap();
        fig.save(&path).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (fig.width(), fig.height()));
        assert_eq!(back, fig.image);
        let err = fig.save(&dir.path().join("missing/m.png")).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }
}
