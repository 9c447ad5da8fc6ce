//! The L×D FEC matrix and which FEC streams are sent.

use std::fmt;

/// Smallest L or D accepted by ffmpeg's prompeg, GStreamer's usual set-ups
/// and MediaConnect/MediaLive (MediaLive `FecOutputSettings` ColumnDepth 4–20).
pub const MIN_DIMENSION: u8 = 4;
/// Largest L or D (SMPTE 2022-1 limit, also ffmpeg prompeg's option range).
pub const MAX_DIMENSION: u8 = 20;
/// Largest L×D (SMPTE 2022-1 limit; ffmpeg: "L * D must be <= 100").
pub const MAX_PACKETS: u16 = 100;

/// Errors of the FEC configuration layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FecError {
    /// L or D out of range, or their product too large.
    #[error("invalid SMPTE 2022-1 FEC matrix L={l} D={d}: L and D must each be 4..=20 and L×D <= 100")]
    InvalidMatrix {
        /// Columns (row length) offered.
        l: u8,
        /// Rows (column depth) offered.
        d: u8,
    },
}

/// A validated SMPTE 2022-1 matrix: media packets fill it row by row, L
/// packets per row (L = columns = row length) and D rows (D = column depth).
///
/// Column FEC protects every L-th packet (D packets), row FEC L consecutive
/// packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FecMatrix {
    l: u8,
    d: u8,
}

impl FecMatrix {
    /// Validates L and D: each 4..=20 and L×D <= 100.
    pub fn new(l: u8, d: u8) -> Result<FecMatrix, FecError> {
        let dims = MIN_DIMENSION..=MAX_DIMENSION;
        if dims.contains(&l) && dims.contains(&d) && u16::from(l) * u16::from(d) <= MAX_PACKETS {
            Ok(FecMatrix { l, d })
        } else {
            Err(FecError::InvalidMatrix { l, d })
        }
    }

    /// Columns, i.e. packets per row.
    pub fn l(&self) -> u8 {
        self.l
    }

    /// Rows, i.e. packets per column.
    pub fn d(&self) -> u8 {
        self.d
    }

    /// Media packets per matrix (L×D).
    pub fn packets(&self) -> usize {
        usize::from(self.l) * usize::from(self.d)
    }
}

impl fmt::Display for FecMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L={} D={}", self.l, self.d)
    }
}

/// Which FEC streams the encoder produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FecMode {
    /// Column FEC only (port +2): one FEC packet per L×D media, corrects
    /// bursts up to L packets. The safest choice for MediaConnect.
    #[default]
    ColumnOnly,
    /// Column (port +2) and row (port +4) FEC: L + D FEC packets per L×D
    /// media; rows also fix isolated losses and unlock column recovery.
    ColumnAndRow,
}

/// Which FEC stream a packet belongs to (SMPTE 2022-1 D bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FecKind {
    /// Column FEC (D = 0), sent to the media port + 2.
    Column,
    /// Row FEC (D = 1), sent to the media port + 4.
    Row,
}

impl FecKind {
    /// UDP port offset from the media port: +2 for columns, +4 for rows.
    pub fn port_offset(self) -> u16 {
        match self {
            FecKind::Column => 2,
            FecKind::Row => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_the_smpte_range() {
        for l in 0..=u8::MAX {
            for d in 0..=u8::MAX {
                let ok = (4..=20).contains(&l) && (4..=20).contains(&d) && u32::from(l) * u32::from(d) <= 100;
                assert_eq!(FecMatrix::new(l, d).is_ok(), ok, "L={l} D={d}");
            }
        }
    }

    #[test]
    fn error_names_rule_and_values() {
        let err = FecMatrix::new(10, 11).err();
        assert_eq!(err, Some(FecError::InvalidMatrix { l: 10, d: 11 }));
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("L=10 D=11"), "{text}");
        assert!(text.contains("4..=20") && text.contains("<= 100"), "{text}");
        assert!(FecMatrix::new(3, 5).is_err());
        assert!(FecMatrix::new(5, 21).is_err());
    }

    #[test]
    fn accessors() {
        let m = FecMatrix::new(5, 20).unwrap();
        assert_eq!((m.l(), m.d(), m.packets()), (5, 20, 100));
        assert_eq!(m.to_string(), "L=5 D=20");
        assert_eq!((FecKind::Column.port_offset(), FecKind::Row.port_offset()), (2, 4));
    }
}
