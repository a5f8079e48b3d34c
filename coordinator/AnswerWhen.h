#pragma once

namespace warden::coordinator {

// When a write's completion may run. Visible: once what the command wrote is committed, so that
// a read made in the completion sees it (callers that read the state there). Applied: as soon
// as apply has the result, possibly a moment before that commit, for callers that only pass the
// result on; a read barrier begun after the completion still waits for the commit.
enum class AnswerWhen { Visible, Applied };

}  // namespace warden::coordinator
