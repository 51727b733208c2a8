//! Tests of ContainerSpecBuilder.
