//! Capture discovery over fake sysfs and /dev trees laid out like real
//! machines': a PCIe HDMI card and a UVC dongle with its metadata node.

#![cfg(test)]

use std::fs;

use std::time::{Duration, Instant};

use hal::capture::{
    select_auto, BtTimings, Bus, CaptureDevice, CaptureEvent, CaptureKind, Discovery, DvQuery, DvTimings, FakeDeckLinkProbe,
    FakeSysfsTree, FakeV4l2Probe, Signal, SysfsOnlyProbe, SysfsScanner, VideoFormat,
};

const P1080_50: BtTimings = BtTimings {
    width: 1920,
    height: 1080,
    interlaced: false,
    pixelclock: 148_500_000,
    hfrontporch: 528,
    hsync: 44,
    hbackporch: 148,
    vfrontporch: 4,
    vsync: 5,
    vbackporch: 36,
    il_vfrontporch: 0,
    il_vsync: 0,
    il_vbackporch: 0,
    reduced_fps: false,
};

/// A fake tree in a temporary directory that lives as long as it.
struct FakeSys {
    _dir: tempfile::TempDir,
    tree: FakeSysfsTree,
}

impl FakeSys {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeSysfsTree::new(dir.path()).unwrap();
        FakeSys { _dir: dir, tree }
    }
}

impl std::ops::Deref for FakeSys {
    type Target = FakeSysfsTree;
    fn deref(&self) -> &FakeSysfsTree {
        &self.tree
    }
}

fn discovery(fake: &FakeSys, probe: &FakeV4l2Probe) -> Discovery {
    Discovery::from_parts(fake.scanner(), Box::new(probe.clone()), Box::new(FakeDeckLinkProbe::default()))
        .with_frame_timeout(Duration::from_millis(500))
}

fn dv(timings: DvTimings) -> Result<DvQuery, String> {
    Ok(DvQuery { is_capture: Some(true), input_no_signal: Some(false), dv_timings: timings })
}

#[test]
fn sysfs_lists_capture_nodes_and_skips_uvc_metadata() {
    let fake = FakeSys::new();
    fake.add_hdmi_card().unwrap();
    fake.add_uvc_dongle().unwrap();
    let nodes = fake.scanner().scan().unwrap();
    let summary: Vec<_> = nodes.iter().map(|n| (n.node.as_str(), n.bus, n.driver.as_deref(), n.stable_id())).collect();
    assert_eq!(
        summary,
        [
            ("video0", Bus::Pci, Some("cobalt"), "v4l2-pci-0000:03:00.0".to_owned()),
            ("video2", Bus::Usb, Some("uvcvideo"), "v4l2-usb-2-1:1.0".to_owned()),
        ]
    );
    assert_eq!(nodes[0].dev_path, fake.dev().join("video0"));
}

#[test]
fn missing_or_empty_video4linux_is_an_empty_list() {
    let fake = FakeSys::new();
    assert!(fake.scanner().scan().unwrap().is_empty(), "empty class directory");
    let nothing = tempfile::tempdir().unwrap();
    let scanner = SysfsScanner::new(nothing.path().join("sys"), nothing.path().join("dev"));
    assert!(scanner.scan().unwrap().is_empty(), "no V4L2 driver loaded at all");
    let mut d = Discovery::from_parts(scanner, Box::new(SysfsOnlyProbe), Box::new(FakeDeckLinkProbe::default()));
    assert_eq!(d.rescan(Instant::now()).unwrap(), []);
    assert!(select_auto(d.devices()).is_none());
}

#[test]
fn node_without_dev_entry_is_skipped_until_udev_creates_it() {
    let fake = FakeSys::new();
    fake.add_hdmi_card().unwrap();
    fs::remove_file(fake.dev().join("video0")).unwrap();
    assert!(fake.scanner().scan().unwrap().is_empty());
    fs::write(fake.dev().join("video0"), "").unwrap();
    assert_eq!(fake.scanner().scan().unwrap().len(), 1);
}

#[test]
fn stale_char_device_node_is_skipped() {
    let fake = FakeSys::new();
    fake.add_hdmi_card().unwrap();
    // Point the node at a real character device: /dev/null is 1:3.
    let node_dir = fake.sys().join(hal::capture::fake_tree::HDMI_CARD).join("video4linux/video0");
    fs::write(node_dir.join("uevent"), "MAJOR=1\nMINOR=3\nDEVNAME=null\n").unwrap();
    let scanner = SysfsScanner::new(fake.sys(), "/dev");
    fs::write(node_dir.join("dev"), "1:3\n").unwrap();
    assert_eq!(scanner.scan().unwrap().len(), 1, "major:minor match");
    fs::write(node_dir.join("dev"), "81:0\n").unwrap();
    assert!(scanner.scan().unwrap().is_empty(), "a leftover node of another device");
}

#[test]
fn hdmi_card_locked_no_link_and_cannot_lock() {
    let fake = FakeSys::new();
    fake.add_hdmi_card().unwrap();
    let probe = FakeV4l2Probe::new();
    let card = fake.dev().join("video0");
    let mut d = discovery(&fake, &probe);
    let t0 = Instant::now();

    probe.set(&card, dv(DvTimings::Timings(P1080_50)));
    let events = d.rescan(t0).unwrap();
    let want_fmt = VideoFormat { width: 1920, height: 1080, fps_num: 50, fps_den: 1, interlaced: false };
    match events.as_slice() {
        [CaptureEvent::Added(dev)] => {
            assert_eq!(dev.kind, CaptureKind::V4l2Hdmi);
            assert_eq!(dev.signal, Signal::Locked(want_fmt));
            assert_eq!(dev.path.as_deref(), Some(card.as_path()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(select_auto(d.devices()).map(|c| c.id.as_str()), Some("v4l2-pci-0000:03:00.0"));

    probe.set(&card, dv(DvTimings::NoLink));
    let id = "v4l2-pci-0000:03:00.0".to_owned();
    let changed = CaptureEvent::SignalChanged { id: id.clone(), from: Signal::Locked(want_fmt), to: Signal::NoLink };
    assert_eq!(d.rescan(t0).unwrap(), [changed]);
    assert!(select_auto(d.devices()).is_none());

    probe.set(&card, dv(DvTimings::NoLock));
    let changed = CaptureEvent::SignalChanged { id: id.clone(), from: Signal::NoLink, to: Signal::CannotLock };
    assert_eq!(d.rescan(t0).unwrap(), [changed]);

    probe.set(&card, dv(DvTimings::OutOfRange));
    assert_eq!(d.devices()[0].signal, Signal::CannotLock);
    d.rescan(t0).unwrap();
    assert_eq!(d.devices()[0].signal, Signal::OutOfRange);
    assert_eq!(d.rescan(t0).unwrap(), [], "no change, no events");

    // A probe error keeps the device listed with an unknown signal.
    probe.set(&card, Err("EBUSY".to_owned()));
    d.rescan(t0).unwrap();
    assert_eq!(d.devices()[0].signal, Signal::Unknown);
}

#[test]
fn uvc_dongle_signal_comes_from_the_frame_watchdog() {
    let fake = FakeSys::new();
    fake.add_uvc_dongle().unwrap();
    let probe = FakeV4l2Probe::new();
    // uvcvideo: a capture node without DV timings.
    probe.set(fake.dev().join("video2"), dv(DvTimings::Unsupported));
    let mut d = discovery(&fake, &probe);
    let t0 = Instant::now();
    let ms = Duration::from_millis;

    let added = d.rescan(t0).unwrap();
    assert!(matches!(
        added.as_slice(),
        [CaptureEvent::Added(CaptureDevice { kind: CaptureKind::V4l2Uvc, signal: Signal::Unknown, .. })]
    ));
    let id = d.devices()[0].id.clone();
    assert!(select_auto(d.devices()).is_none(), "unknown is never auto-selected");

    let fmt = VideoFormat { width: 3840, height: 2160, fps_num: 30, fps_den: 1, interlaced: false };
    let wd = d.watchdog(&id);
    wd.set_format(fmt);
    wd.start(t0);
    wd.frame(t0 + ms(40));
    let events = d.rescan(t0 + ms(50)).unwrap();
    assert_eq!(events, [CaptureEvent::SignalChanged { id: id.clone(), from: Signal::Unknown, to: Signal::Locked(fmt) }]);
    assert_eq!(select_auto(d.devices()).map(|c| c.kind), Some(CaptureKind::V4l2Uvc));

    // The HDMI source behind the dongle is switched off: frames stop.
    let events = d.rescan(t0 + ms(1000)).unwrap();
    assert_eq!(events, [CaptureEvent::SignalChanged { id, from: Signal::Locked(fmt), to: Signal::NoSignal }]);
}

#[test]
fn hot_plug_add_and_remove_between_rescans() {
    let fake = FakeSys::new();
    fake.add_hdmi_card().unwrap();
    let probe = FakeV4l2Probe::new();
    let mut d = discovery(&fake, &probe);
    let t0 = Instant::now();
    assert_eq!(d.rescan(t0).unwrap().len(), 1);

    fake.add_uvc_dongle().unwrap();
    let events = d.rescan(t0).unwrap();
    match events.as_slice() {
        [CaptureEvent::Added(dev)] => {
            assert_eq!((dev.id.as_str(), dev.kind), ("v4l2-usb-2-1:1.0", CaptureKind::V4l2Uvc));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.devices().len(), 2);

    fake.remove_uvc_dongle().unwrap();
    assert_eq!(d.rescan(t0).unwrap(), [CaptureEvent::Removed { id: "v4l2-usb-2-1:1.0".to_owned() }]);
    assert_eq!(d.devices().len(), 1);
}

#[test]
fn nodes_that_do_not_capture_are_not_listed() {
    let fake = FakeSys::new();
    fake.add_hdmi_card().unwrap();
    let probe = FakeV4l2Probe::new();
    // What an ioctl backend would answer for an M2M encoder node.
    probe.set(fake.dev().join("video0"), Ok(DvQuery { is_capture: Some(false), ..DvQuery::UNKNOWN }));
    let mut d = discovery(&fake, &probe);
    assert_eq!(d.rescan(Instant::now()).unwrap(), []);
}

#[test]
fn decklink_first_and_a_failing_decklink_probe_keeps_its_devices() {
    let fake = FakeSys::new();
    fake.add_hdmi_card().unwrap();
    let probe = FakeV4l2Probe::new();
    probe.set(fake.dev().join("video0"), dv(DvTimings::Timings(P1080_50)));
    let fmt = P1080_50.format().unwrap();
    let sdi = CaptureDevice {
        id: "decklink-1a2b".to_owned(),
        kind: CaptureKind::DeckLink,
        index: 0,
        path: None,
        name: "DeckLink Mini Recorder".to_owned(),
        driver: Some("decklink".to_owned()),
        bus: Bus::Other,
        signal: Signal::Locked(fmt),
    };
    let decklink = FakeDeckLinkProbe::new(vec![sdi.clone()]);
    let mut d = Discovery::from_parts(fake.scanner(), Box::new(probe), Box::new(decklink.clone()));
    let t0 = Instant::now();
    assert_eq!(d.rescan(t0).unwrap().len(), 2);
    assert_eq!(select_auto(d.devices()).map(|c| c.id.as_str()), Some("decklink-1a2b"));
    decklink.set(Err("device monitor failed".to_owned()));
    assert_eq!(d.rescan(t0).unwrap(), [], "kept, not removed");
    decklink.set(Ok(Vec::new()));
    assert_eq!(d.rescan(t0).unwrap(), [CaptureEvent::Removed { id: sdi.id }]);
}

#[test]
fn devices_serialise_for_probe_json() {
    let fake = FakeSys::new();
    fake.add_hdmi_card().unwrap();
    let probe = FakeV4l2Probe::new();
    probe.set(fake.dev().join("video0"), dv(DvTimings::NoLink));
    let mut d = discovery(&fake, &probe);
    d.rescan(Instant::now()).unwrap();
    let json = serde_json::to_value(d.devices()).unwrap();
    assert_eq!(json[0]["kind"], "v4l2_hdmi");
    assert_eq!(json[0]["bus"], "pci");
    assert_eq!(json[0]["signal"]["state"], "no_link");
    let event = serde_json::to_value(CaptureEvent::Removed { id: "x".into() }).unwrap();
    assert_eq!(event, serde_json::json!({"event": "removed", "id": "x"}));
}
