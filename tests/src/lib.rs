//! The real-component test harness: a private containerd, a local OCI
//! registry, test images built from `busybox-static` and a pause program,
//! and a `cri-server` pointed at them. Every integration suite in
//! `tests/tests/` uses it; nothing in here is a mock.
