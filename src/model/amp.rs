//! Automatic mixed precision: libtorch's autocast for one device type, on the calling thread.
//! Inside [`autocast`], matrix products and convolutions run in float16 on CUDA and in
//! bfloat16 on the CPU (libtorch's defaults for each), the ops autocast keeps in float32 stay
//! there, and parameters stay float32 (their gradients too).
//!
//! tch's own `tch::autocast` switches only CUDA's autocast and does nothing without a GPU, so
//! this calls libtorch's C++ API (`at::autocast::set_autocast_enabled(DeviceType, bool)` and
//! friends, exported by libtorch_cpu with C++ linkage) directly. `c10::DeviceType` is an
//! `int8_t` enum (CPU = 0, CUDA = 1); these functions take and return plain scalars, which the
//! C and C++ calling conventions pass alike.

use tch::Device;

mod ffi {
    extern "C" {
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device_type: i8) -> bool;
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device_type: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast17increment_nestingEv"]
        pub fn increment_nesting() -> i32;
        #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
        pub fn decrement_nesting() -> i32;
        #[link_name = "_ZN2at8autocast11clear_cacheEv"]
        pub fn clear_cache();
    }
}

fn device_type(device: Device) -> i8 {
    match device {
        Device::Cuda(_) => 1,
        _ => 0,
    }
}

/// Runs `f` with autocast enabled for `device`'s type on this thread, restoring the previous
/// state afterwards, also if `f` panics (the cache of cast weights is cleared when the
/// outermost region ends).
pub fn autocast<T>(device: Device, f: impl FnOnce() -> T) -> T {
    let _region = Region::enter(device_type(device));
    f()
}

/// Runs `f` with autocast disabled for `device`'s type (inside an autocast region: a part that
/// must stay float32), restoring the previous state afterwards.
pub fn full_precision<T>(device: Device, f: impl FnOnce() -> T) -> T {
    let _region = Region::set(device_type(device), false);
    f()
}

/// Whether autocast is on for `device`'s type on this thread.
pub fn is_enabled(device: Device) -> bool {
    // SAFETY: a plain-scalar read of libtorch's thread-local autocast state.
    unsafe { ffi::is_autocast_enabled(device_type(device)) }
}

/// An autocast region; leaving it (drop) restores the state found on entry.
struct Region {
    device_type: i8,
    previous: bool,
}

impl Region {
    fn enter(device_type: i8) -> Region {
        Region::set(device_type, true)
    }

    fn set(device_type: i8, enabled: bool) -> Region {
        // SAFETY: plain-scalar calls into libtorch's thread-local autocast state.
        let previous = unsafe {
            let previous = ffi::is_autocast_enabled(device_type);
            ffi::set_autocast_enabled(device_type, enabled);
            ffi::increment_nesting();
            previous
        };
        Region { device_type, previous }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: as in `enter`; undoes exactly what it did.
        unsafe {
            if ffi::decrement_nesting() == 0 {
                ffi::clear_cache();
            }
            ffi::set_autocast_enabled(self.device_type, self.previous);
        }
    }
}
