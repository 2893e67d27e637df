import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// base "./": the built page works from any folder it is served from.
export default defineConfig({
  plugins: [react()],
  base: "./",
  build: { chunkSizeWarningLimit: 1000 }, // React and the SDK in one file: fine for an example
});
