//! Builds the vendored OpenJPH (vendor/, see VENDORED.md) as a static library with cmake, then the C shim over
//! its C++ API (src/shim.cpp).

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    println!("cargo:rerun-if-changed=vendor");
    // Always optimised: a debug build of the codec makes every test that decodes an image slow.
    let out = cmake::Config::new("vendor")
        .profile("Release")
        .define("BUILD_SHARED_LIBS", "OFF")
        .define("OJPH_BUILD_EXECUTABLES", "OFF")
        .define("OJPH_ENABLE_TIFF_SUPPORT", "OFF")
        .define("OJPH_BUILD_TESTS", "OFF")
        .define("CMAKE_POSITION_INDEPENDENT_CODE", "ON")
        .build();
    // The shim first: static libraries are linked in the order given, each before what it uses.
    cc::Build::new()
        .cpp(true)
        .file("src/shim.cpp")
        .include("vendor/src/core/openjph")
        .flag_if_supported("-std=c++14")
        .opt_level(3)
        .compile("openjph_shim");
    for lib in ["lib", "lib64"] {
        println!("cargo:rustc-link-search=native={}/{lib}", out.display());
    }
    println!("cargo:rustc-link-lib=static=openjph");
    println!("cargo:rustc-link-lib=dylib=stdc++");
}
