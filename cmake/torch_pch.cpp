// The translation unit of the fusec_torch_pch target (CMakeLists.txt): empty; the target exists to build the
// precompiled LibTorch header that every LibTorch target of the project reuses.
