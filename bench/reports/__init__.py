"""What people read: terminal tables (`tables`), the markdown leaderboard, plots."""
