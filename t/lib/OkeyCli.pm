package OkeyCli;
# Drives openaikey, the command-line helper, for the tests: starts it,
# reads what it prints, and plays the browser from the sign-in address it
# prints to its loopback listener.
use strict;
use warnings;
use Exporter 'import';
use IPC::Open3 qw(open3);
use POSIX qw(WNOHANG);
use Symbol qw(gensym);
use Time::HiRes ();
use Apache::Test ();
use OkeyTest;

our @EXPORT = qw(helper_start helper_read helper_url helper_finish follow);

my $CLI = Apache::Test::vars('serverroot') . '/../openaikey';

# Starts openaikey with @args and the cache in $home; reads nothing yet.
sub helper_start {
    my ($home, @args) = @_;
    local $ENV{XDG_CACHE_HOME} = "$home/cache";
    local $ENV{HOME} = $home;
    local $ENV{no_proxy} = '127.0.0.1';
    my $err = gensym;
    my $pid = open3(my $in, my $out, $err, $CLI, @args);
    close $in;
    return { pid => $pid, out => $out, err => $err, stdout => '', stderr => '' };
}

# Reads what the helper wrote, for at most $seconds or until $until holds.
sub helper_read {
    my ($h, $seconds, $until) = @_;
    my $deadline = Time::HiRes::time() + $seconds;
    my %open = (out => $h->{out}, err => $h->{err});
    while (%open && Time::HiRes::time() < $deadline && !($until && $until->($h))) {
        my $rin = '';
        vec($rin, fileno($_), 1) = 1 for values %open;
        select(my $rout = $rin, undef, undef, 0.2) > 0 or next;
        for my $name (keys %open) {
            next unless vec($rout, fileno($open{$name}), 1);
            my $n = sysread($open{$name}, my $buf, 65536);
            if ($n) { $h->{ $name eq 'out' ? 'stdout' : 'stderr' } .= $buf }
            else { delete $open{$name} }
        }
    }
}

# The sign-in address the helper printed (--no-browser), or undef.
sub helper_url {
    my ($h) = @_;
    helper_read($h, 60, sub { $_[0]{stderr} =~ m{^\s+http://\S+$}m });
    return $h->{stderr} =~ m{^\s+(http://\S+)$}m ? $1 : undef;
}

# Waits for the helper to end; its exit status (killed after $seconds).
sub helper_finish {
    my ($h, $seconds) = @_;
    helper_read($h, $seconds // 30);
    my $deadline = time + 5;
    my $done = 0;
    until ($done = waitpid($h->{pid}, WNOHANG)) {
        if (time > $deadline) { kill 'KILL', $h->{pid}; waitpid($h->{pid}, 0); return -1 }
        kill 'TERM', $h->{pid} if time > $deadline - 3;
        Time::HiRes::sleep(0.05);
    }
    return $? >> 8;
}

# Plays the browser from the printed address to the helper's listener:
# every URL and page it saw, the callback's response and the listener's.
sub follow {
    my ($url, $email, %opts) = @_;
    my $ua = browser();
    my @seen;
    my $login = $ua->get($url);
    push @seen, $url, $login->as_string;
    die 'login: ' . $login->status_line unless $login->code == 302;
    my $callback = authorize($ua, $login->header('Location'), $email, %opts);
    push @seen, $login->header('Location'), $callback;
    my $res = $ua->get($callback);
    push @seen, $res->as_string;
    my $listener = $res->code == 302 ? $ua->get($res->header('Location')) : undef;
    push @seen, $listener->as_string if $listener;
    return { seen => \@seen, callback => $res, listener => $listener };
}

1;
