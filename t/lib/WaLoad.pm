package WaLoad;

# A steady load of signed webhooks from a forked sender that retries like
# Meta (any answer but 200 is sent again, with a backoff), and the fault
# summary: sent, accepted, refused, lost, duplicated.

use strict;
use warnings;
use Exporter 'import';
use JSON::PP;
use Time::HiRes qw(sleep time);
use WaBody qw(text_message messages_body);

our @EXPORT_OK = qw(bodies start_load finish_load summary);

# n bodies, one message each, distinct wamids
sub bodies {
    my ($tag, $n) = @_;
    return map { [ "wamid.$tag.$_", messages_body(
        from => sprintf('55118%07d', $_ % 97),
        messages => [ text_message("wamid.$tag.$_", "load $_",
                                   from => sprintf('55118%07d', $_ % 97),
                                   ts => 1780000000 + $_) ]) ] } 1 .. $n;
}

# post every body at about rate per second, retrying until 200 or deadline
sub start_load {
    my ($t, $bodies, %o) = @_;
    my $rate = $o{rate} // 200;
    my $file = $t->dir . "/load-$$-" . int(rand 1e6) . '.json';
    my $pid = fork // die;
    if (!$pid) {
        my $http = HTTP::Tiny->new(timeout => 5, keep_alive => 0);
        my (%res, @retry);
        my $t0 = time;
        my $deadline = $t0 + ($o{deadline} // 60);
        my $i = 0;
        my @queue = @$bodies;
        while ((@queue || @retry) && time < $deadline) {
            my $item;
            if (@retry && $retry[0][0] <= time) { $item = (shift @retry)->[1] }
            elsif (@queue) { $item = shift @queue }
            else { sleep 0.01; next }
            my ($id, $body) = @$item;
            my $r = $http->request('POST', $t->url, { content => $body,
                headers => { 'Content-Type' => 'application/json',
                    'X-Hub-Signature-256' => WaTest::sign($t->{secret},
                                                          $body) } });
            my $st = $r->{status};
            push @{ $res{$id}{statuses} }, $st;
            if ($st == 200) {
                $res{$id}{ok} = 1;
            } else {
                my $n = @{ $res{$id}{statuses} };
                push @retry, [ time + 0.05 * $n, $item ];
                @retry = sort { $a->[0] <=> $b->[0] } @retry;
            }
            $i++;
            # one reading of the clock: a second one may already be past
            # $due, and Time::HiRes dies on a negative sleep
            my $wait = $t0 + $i / $rate - time;
            sleep $wait if $wait > 0;
        }
        open my $fh, '>', $file or die;
        print $fh encode_json(\%res);
        close $fh;
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $file, n => scalar @$bodies };
}

sub finish_load {
    my ($load) = @_;
    waitpid $load->{pid}, 0;
    open my $fh, '<', $load->{file} or return {};
    local $/;
    return decode_json(<$fh>);
}

# what Redis holds against what the sender was told
sub summary {
    my ($t, $name, $bodies, $res, $stream) = @_;
    my %count;
    $count{ $_->{msg_id} // '' }++ for $t->stream_events($stream // 'wa:messages');
    my ($accepted, $refused, $lost, $dup) = (0, 0, 0, 0);
    for my $b (@$bodies) {
        my $r = $res->{ $b->[0] } or next;
        $refused += grep { $_ != 200 } @{ $r->{statuses} };
        next unless $r->{ok};
        $accepted++;
        $lost++ unless $count{ $b->[0] };
    }
    $dup += $_ - 1 for grep { $_ > 1 } values %count;
    my $line = sprintf '%-28s sent %d, accepted %d, refused (then retried) '
        . '%d, lost %d, duplicated %d', $name, scalar @$bodies, $accepted,
        $refused, $lost, $dup;
    return ($line, $accepted, $refused, $lost, $dup);
}

1;
