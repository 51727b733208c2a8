//! containerd client (placeholder, being written).
