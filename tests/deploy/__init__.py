"""Static checks of the deployment files: nothing here builds or starts a container."""
