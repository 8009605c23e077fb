"""Deployment artefacts: the Kubernetes manifests under ``deploy/k8s`` and their generator."""
