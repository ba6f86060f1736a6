#!/bin/sh
# Offline stand-in for Bazel's coverage tools; see third_party/bazel/README.md.
echo "bazel coverage is unavailable: @remote_coverage_tools is an offline stand-in (third_party/bazel/remote_coverage_tools)" >&2
exit 1
