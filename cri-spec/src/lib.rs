//! OCI runtime spec builders: pure functions from a CRI `ContainerConfig`,
//! `PodSandboxConfig`, image config and runtime-handler config to an
//! `oci_spec::runtime::Spec`. OS facts reach it through traits, never
//! through direct system calls.
