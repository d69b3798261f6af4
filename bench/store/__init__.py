"""The run store: its layout and run ids (`layout`), the runner that fits, generates and writes
resumable runs (`runner`), and the import of images made elsewhere (`external`)."""
