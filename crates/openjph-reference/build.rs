//! Compiles the C shim over OpenJPH's C++ API and links the system library (Debian's libopenjph-dev, which
//! tests/run.sh installs).

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/shim.cpp")
        .include("/usr/include/openjph")
        .flag_if_supported("-std=c++14")
        .opt_level(3)
        .compile("openjph_shim");
    println!("cargo:rustc-link-lib=dylib=openjph");
}
