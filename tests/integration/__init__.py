"""Tests against real components: docker-registry, skopeo, buildah, umoci, dockerd."""
