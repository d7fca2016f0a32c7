"""The model bundles shipped with edgestar (data only): `edgestar-tiny/` is the default that
`edgestar solve` and `edgestar.load()` use when no bundle or model is named.

It installs as `edgestar/models`, where `edgestar.bundle.default_bundle_path` finds it; its
model card is `edgestar-tiny.md`.
"""
