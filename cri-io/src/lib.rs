//! Container IO: stdio FIFOs, CRI-format log files
//! (`<RFC3339Nano> <stream> <P|F> <msg>`), attach fan-out and exec IO.
