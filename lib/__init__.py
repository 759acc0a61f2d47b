"""StreamRace's UI-free core, by role (docs/architecture.md): core/ (the Trace, metrics, one
call, the run lifecycle), endpoints/, serving/ (child servers), storage/ (the run log), one
package per feature (race/, bench/, guards/, replay/, report/), present/ (charts without
Streamlit) and cli/ (the command lines). Never imports Streamlit."""
