//! Operator-facing view of `SRT_TRACEBSTATS`.

use crate::ffi::CBytePerfMon;

/// Counters from `srt_bistats()` (`SRT_TRACEBSTATS`, srt.h) that an encoder
/// operator needs. `*_total` are since connect; the others are instantaneous,
/// except `pkt_rcv_retrans` (see its doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// `msTimeStamp`: ms since the socket was created.
    pub ms_timestamp: i64,
    /// `pktSentTotal`: data packets sent, retransmissions included.
    pub pkt_sent_total: i64,
    /// `pktSentUniqueTotal`: data packets handed in by the application.
    pub pkt_sent_unique_total: i64,
    /// `pktSndLossTotal`: packets reported lost by the receiver (NAKs).
    pub pkt_snd_loss_total: i32,
    /// `pktRetransTotal`: packets retransmitted.
    pub pkt_retrans_total: i32,
    /// `pktSndDropTotal`: packets dropped unsent because they were too late.
    pub pkt_snd_drop_total: i32,
    /// `byteSentTotal`.
    pub byte_sent_total: u64,
    /// `byteRetransTotal`.
    pub byte_retrans_total: u64,
    /// `byteSndDropTotal`.
    pub byte_snd_drop_total: u64,
    /// `pktRecvTotal`.
    pub pkt_recv_total: i64,
    /// `pktRcvLossTotal`: gaps detected by this receiver.
    pub pkt_rcv_loss_total: i32,
    /// `pktRcvDropTotal`: packets never delivered (too late to play).
    pub pkt_rcv_drop_total: i32,
    /// `pktRcvRetrans`: retransmitted packets received. libsrt has no total for
    /// this one; it counts since the last `stats(true)` (since connect if never cleared).
    pub pkt_rcv_retrans: i32,
    /// `pktRcvBelated`: packets that arrived too late and were ignored.
    pub pkt_rcv_belated: i64,
    /// `mbpsSendRate`.
    pub mbps_send_rate: f64,
    /// `mbpsRecvRate`.
    pub mbps_recv_rate: f64,
    /// `mbpsBandwidth`: estimated link capacity.
    pub mbps_bandwidth: f64,
    /// `msRTT`: smoothed round-trip time.
    pub ms_rtt: f64,
    /// `pktFlightSize`: packets sent and not yet acknowledged.
    pub pkt_flight_size: i32,
    /// `pktSndBuf`: unacknowledged packets in the send buffer.
    pub pkt_snd_buf: i32,
    /// `byteSndBuf`.
    pub byte_snd_buf: i32,
    /// `msSndBuf`: time span of the send buffer; growth means the link is too slow.
    pub ms_snd_buf: i32,
    /// `byteAvailSndBuf`: free space in the send buffer.
    pub byte_avail_snd_buf: i32,
    /// `pktRcvBuf`: undelivered packets in the receive buffer.
    pub pkt_rcv_buf: i32,
    /// `msRcvBuf`: time span of the receive buffer (≈ latency when healthy).
    pub ms_rcv_buf: i32,
    /// `msSndTsbPdDelay`: negotiated peer latency.
    pub ms_snd_tsbpd_delay: i32,
    /// `msRcvTsbPdDelay`: negotiated receive latency.
    pub ms_rcv_tsbpd_delay: i32,
    /// `pktReorderTolerance`.
    pub pkt_reorder_tolerance: i32,
    /// `byteMSS`: maximum segment size.
    pub byte_mss: i32,
}

impl From<&CBytePerfMon> for Stats {
    fn from(p: &CBytePerfMon) -> Self {
        Stats {
            ms_timestamp: p.msTimeStamp,
            pkt_sent_total: p.pktSentTotal,
            pkt_sent_unique_total: p.pktSentUniqueTotal,
            pkt_snd_loss_total: p.pktSndLossTotal,
            pkt_retrans_total: p.pktRetransTotal,
            pkt_snd_drop_total: p.pktSndDropTotal,
            byte_sent_total: p.byteSentTotal,
            byte_retrans_total: p.byteRetransTotal,
            byte_snd_drop_total: p.byteSndDropTotal,
            pkt_recv_total: p.pktRecvTotal,
            pkt_rcv_loss_total: p.pktRcvLossTotal,
            pkt_rcv_drop_total: p.pktRcvDropTotal,
            pkt_rcv_retrans: p.pktRcvRetrans,
            pkt_rcv_belated: p.pktRcvBelated,
            mbps_send_rate: p.mbpsSendRate,
            mbps_recv_rate: p.mbpsRecvRate,
            mbps_bandwidth: p.mbpsBandwidth,
            ms_rtt: p.msRTT,
            pkt_flight_size: p.pktFlightSize,
            pkt_snd_buf: p.pktSndBuf,
            byte_snd_buf: p.byteSndBuf,
            ms_snd_buf: p.msSndBuf,
            byte_avail_snd_buf: p.byteAvailSndBuf,
            pkt_rcv_buf: p.pktRcvBuf,
            ms_rcv_buf: p.msRcvBuf,
            ms_snd_tsbpd_delay: p.msSndTsbPdDelay,
            ms_rcv_tsbpd_delay: p.msRcvTsbPdDelay,
            pkt_reorder_tolerance: p.pktReorderTolerance,
            byte_mss: p.byteMSS,
        }
    }
}
