/**
 * One line per event on stderr: the terminal in the foreground, the log file
 * for a background mount (its stderr is that file), where a timestamp helps.
 */
export function mountLogger(toFile: boolean): (line: string) => void {
  return (line) => {
    const text = line.replace(/\s*\n\s*/g, ' ');
    process.stderr.write(toFile ? `${new Date().toISOString()} loopless: ${text}\n` : `loopless: ${text}\n`);
  };
}
