//! What every PNG chart of the examples sets up the same way: the font
//! (registered once as `sans-serif`), a white bitmap of a given size, and
//! plotters' drawing errors as `anyhow` errors naming the file.
//! Included by `examples/overlay_bench` and `examples/two_gateways`
//! (`#[path]`), so it is not an example of its own.

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::path::Path;

/// The font the charts are written with (Debian `fonts-dejavu-core`).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers [`FONT`] as plotters' `sans-serif`, for the process's life.
pub fn register_sans_serif() -> anyhow::Result<()> {
    let font = std::fs::read(FONT)
        .with_context(|| format!("{FONT} (apt-get install fonts-dejavu-core)"))?;
    // plotters keeps the font for the process's life.
    register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{FONT} is not a font plotters can read"))
}

/// A `width` x `height` PNG at `path`, filled white.
pub fn white_png(
    path: &Path,
    (width, height): (u32, u32),
) -> anyhow::Result<DrawingArea<BitMapBackend<'_>, Shift>> {
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(drawing_error(path))?;
    Ok(root)
}

/// Turns plotters' drawing errors into errors that name `path`.
pub fn drawing_error<E: std::error::Error + Send + Sync>(
    path: &Path,
) -> impl Fn(DrawingAreaErrorKind<E>) -> anyhow::Error + Copy + '_ {
    move |e| anyhow::anyhow!("{}: {e:?}", path.display())
}
